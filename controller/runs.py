"""Controller layer: run orchestration on top of the Controller API.

:class:`RunControl` steps a set of satellites through a run — initialize if needed, launch,
start, hold (for a duration, until a metric reaches a value, or until cancelled), stop, land —
and fails fast: a satellite in ERROR, SAFE or DEAD, or one that leaves, raises
:class:`RunError` naming it and its status. :meth:`RunControl.recover` brings what is left to a
known state afterwards. ``Controller run`` and :mod:`controller.scan` are built on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from constellation.core.states import State
from constellation.errors import ConfigError, TransitionError
from controller.conditions import unused_keys_in
from controller.config import load_config
from controller.controller import Controller, Reply
from controller.group import GroupView
from controller.telemetry import MetricWatcher

__all__ = [
    "FAILED_STATES",
    "NEEDS_INITIALIZE",
    "Cancelled",
    "RunControl",
    "RunError",
    "Until",
]

#: States from which ``initialize`` is the way forward.
NEEDS_INITIALIZE = frozenset({"NEW", "INIT", "SAFE", "ERROR"})
#: States that end a run sequence with a failure.
FAILED_STATES = frozenset({"ERROR", "SAFE", "DEAD"})


class RunError(TransitionError):
    """A run sequence failed; ``failures`` maps satellite -> "STATE: status"."""

    def __init__(self, message: str, failures: Mapping[str, str] | None = None) -> None:
        self.failures = dict(failures or {})
        details = "; ".join(f"{n} {s}" for n, s in sorted(self.failures.items()))
        super().__init__(f"{message}: {details}" if details else message)


class Cancelled(RunError):
    """The sequence was cancelled by the operator (Ctrl-C)."""


@dataclass(frozen=True)
class Until:
    """Hold a run until ``metric`` of ``satellite`` (or of any satellite) reaches ``value``."""

    metric: str
    value: float
    satellite: str | None = None

    def reached(self, watcher: MetricWatcher) -> bool:
        samples = watcher.latest(self.metric, self.satellite)
        return any(
            isinstance(s.value, int | float) and s.value >= self.value for s in samples.values()
        )

    def __str__(self) -> str:
        who = f"{self.satellite} " if self.satellite else ""
        return f"{who}{self.metric.upper()} >= {self.value:g}"


ProgressCallback = Callable[[float, float | None, MetricWatcher | None], None]


class RunControl:
    """Run sequences for the satellites of one controller (all present ones, or ``names``)."""

    def __init__(
        self,
        controller: Controller,
        view: GroupView | None = None,
        *,
        names: Iterable[str] | None = None,
        timeout: float = 30.0,
        cancel: threading.Event | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.ctl = controller
        self.view = view or GroupView(controller)
        self._own_view = view is None
        self.names = sorted(names) if names is not None else self.view.names
        self.timeout = timeout
        self.cancel = cancel or threading.Event()
        self.log = log
        #: The run identifier this object last started (None before the first start).
        self.started_run: str | None = None
        #: Satellite -> configuration keys it reported unused after the last ``initialize``.
        self.unused: dict[str, list[str]] = {}

    # --- observation ------------------------------------------------------------------------------
    def states(self) -> dict[str, str]:
        """Current state of each participant (DEAD once it left)."""
        present = self.ctl.satellites
        states = self.ctl.states
        return {n: states.get(n, "?") if n in present else "DEAD" for n in self.names}

    def poll_states(self) -> dict[str, str]:
        """Ask every present participant for its state (``get_state``), DEAD if gone.

        Satellites whose heartbeats stopped (DEAD in the view) are not asked: a frozen one
        would only make every poll wait for its timeout.
        """
        view = self.ctl.states
        present = [n for n in self.names if n in self.ctl.satellites and view.get(n) != "DEAD"]
        replies = self._command("get_state", present)
        states = self.states()
        for name, reply in replies.items():
            if reply.ok:
                states[name] = reply.verb
        return states

    def status_of(self, name: str) -> str:
        """The status text of ``name`` (from ``get_status``, else its last heartbeat)."""
        if name in self.ctl.satellites:
            reply = self._command("get_status", [name]).get(name)
            if reply is not None and reply.ok:
                return reply.verb
        return self.ctl.statuses.get(name, "left the group")

    def failures(self, states: Mapping[str, str] | None = None) -> dict[str, str]:
        """Participants in ERROR, SAFE or DEAD, with "STATE: status"."""
        states = states if states is not None else self.states()
        return {
            n: f"{s}: {self.status_of(n)}" for n, s in sorted(states.items()) if s in FAILED_STATES
        }

    def check(self) -> None:
        """Raise :class:`RunError` if a participant failed, :class:`Cancelled` if cancelled."""
        failed = self.failures()
        if failed:
            raise RunError("satellite failure", failed)
        if self.cancel.is_set():
            raise Cancelled("cancelled by the operator")

    def _command(self, verb: str, names: Iterable[str], payload: Any = None) -> dict[str, Reply]:
        present = [n for n in names if n in self.ctl.satellites]
        if not present:
            return {}
        if payload is None:
            return self.ctl.command(verb, targets=present)
        return self.ctl.command(verb, payload, targets=present)

    # --- waiting ----------------------------------------------------------------------------------
    def wait_state(self, state: str, names: Iterable[str] | None = None) -> None:
        """Wait until ``names`` (default: all participants) are in ``state``; fail fast."""
        names = list(self.names if names is None else names)
        wanted = state.upper()
        deadline = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            seen = self.view.changes
            states = self.poll_states()  # decisions on answers, not on the heartbeat view
            current = {n: states.get(n, "?") for n in names}
            if all(s == wanted for s in current.values()):
                return
            failed = {n: s for n, s in current.items() if s in FAILED_STATES and s != wanted}
            if failed:
                raise RunError(f"while waiting for {wanted}", self.failures(failed))
            if self.cancel.is_set():
                raise Cancelled(f"cancelled while waiting for {wanted}")
            if now > deadline:
                missing = {n: s for n, s in current.items() if s != wanted}
                raise RunError(
                    f"not in {wanted} after {self.timeout:g} s",
                    {n: f"{s}: {self.status_of(n)}" for n, s in missing.items()},
                )
            self._wait_change(seen, min(0.25, max(0.0, deadline - now)))

    def _wait_change(self, seen: int, timeout: float) -> None:
        """Wait for the next change the view reports (a state change, a join, a departure)."""
        self.view.wait(lambda: self.cancel.is_set() or self.view.changes != seen, timeout)

    def wait_settled(self) -> dict[str, str]:
        """Wait until no participant is in a transitional state; returns the states."""
        deadline = time.monotonic() + self.timeout
        while True:
            seen = self.view.changes
            states = self.poll_states()
            busy = {
                n: s for n, s in states.items() if s in State.__members__ and not State[s].is_steady
            }
            if not busy or self.cancel.is_set():
                return states
            if time.monotonic() > deadline:
                raise RunError("satellites still in transition", busy)
            self._wait_change(seen, 0.25)

    def _send(self, verb: str, names: Iterable[str], payload: Any = None) -> None:
        names = list(names)
        replies = self._command(verb, names, payload)
        refused = {n: str(r) for n, r in replies.items() if not r.ok}
        gone = {n: "DEAD: left the group" for n in names if n not in replies}
        if refused or gone:
            raise RunError(f"'{verb}' refused", {**refused, **gone})

    # --- steps --------------------------------------------------------------------------------
    def initialize(self, config: Any, names: Iterable[str] | None = None) -> None:
        """``initialize`` (with each satellite's merged section) and wait for INIT."""
        names = list(self.names if names is None else names)
        if not names:
            return
        self.log(f"initializing {', '.join(names)}")
        try:
            replies = self.ctl.initialize(config, targets=names)
        except ConfigError as exc:  # e.g. conditions naming absent satellites
            raise RunError(f"configuration not sent: {exc}") from exc
        refused = {n: str(r) for n, r in replies.items() if not r.ok}
        if refused:
            raise RunError("'initialize' refused", refused)
        self.wait_state("INIT", names)
        self.unused = {n: unused_keys_in(self.status_of(n)) for n in names}
        for name, keys in sorted(self.unused.items()):
            if keys:
                self.log(f"{name} did not use: {', '.join(keys)} (misspelt?)")

    def transition(
        self, verb: str, target: str, names: Iterable[str] | None = None, payload: Any = None
    ) -> None:
        """Send a transition command to ``names`` and wait for ``target``."""
        names = list(self.names if names is None else names)
        if not names:
            return
        self.log(
            f"{verb} {payload + ' ' if isinstance(payload, str) else ''}"
            f"-> {target}: {', '.join(names)}"
        )
        self._send(verb, names, payload)
        self.wait_state(target, names)

    def prepare(self, config: Any | None) -> None:
        """Bring every participant to ORBIT: initialize (NEW, INIT, SAFE, ERROR) and launch.

        Without ``config`` satellites in INIT are launched as they are, and NEW, SAFE or
        ERROR is an error. Satellites already in ORBIT stay as they are; RUN is an error.
        """
        states = self.wait_settled()
        self.check_cancel()
        running = {n: f"RUN: run '{self.view.run_id(n)}'" for n, s in states.items() if s == "RUN"}
        if running:
            raise RunError("already running (stop the run first)", running)
        dead = {n: "DEAD: left the group" for n, s in states.items() if s == "DEAD"}
        if dead:
            raise RunError("satellites are gone", dead)
        if config is not None:
            loaded = load_config(config)
            self.initialize(loaded, [n for n, s in states.items() if s in NEEDS_INITIALIZE])
        else:
            blocked = {n: s for n, s in states.items() if s in NEEDS_INITIALIZE - {"INIT"}}
            if blocked:
                raise RunError("a configuration file is needed to initialize", blocked)
        states = self.poll_states()  # the heartbeat view may lag behind
        self.transition("launch", "ORBIT", [n for n, s in states.items() if s == "INIT"])

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled by the operator")

    def start(self, run_id: str) -> None:
        """Start run ``run_id`` and wait for RUN (remembered for :meth:`recover`)."""
        self.started_run = run_id
        self.transition("start", "RUN", payload=run_id)

    def hold(
        self,
        duration: float | None = None,
        until: Until | None = None,
        watcher: MetricWatcher | None = None,
        progress: ProgressCallback | None = None,
        tick: float = 0.5,
    ) -> str:
        """Keep the run going until ``duration``, ``until`` or cancel; fail on failure.

        Returns why it ended: ``"duration"``, ``"until"`` or ``"cancelled"`` (the cancel
        request is then consumed, so that the caller can stop the run).
        """
        if until is not None and watcher is None:
            raise ValueError("an 'until' condition needs a MetricWatcher")
        start = time.monotonic()
        end = math.inf if duration is None else start + duration
        while True:
            failed = self.failures()
            if failed:
                raise RunError("satellite failure during the run", failed)
            now = time.monotonic()
            if progress is not None:
                progress(min(now, end) - start, duration, watcher)
            if self.cancel.is_set():
                self.cancel.clear()  # consumed: the caller goes on to stop the run
                return "cancelled"
            if until is not None and watcher is not None and until.reached(watcher):
                return "until"
            if now >= end:
                return "duration"
            wait = min(tick, end - now)
            if watcher is not None and until is not None:
                watcher.wait(wait)
            else:
                self.view.wait(lambda: self.cancel.is_set() or bool(self.failures_fast()), wait)

    def failures_fast(self) -> dict[str, str]:
        """Failed participants by their last known state only (no network)."""
        return {n: s for n, s in self.states().items() if s in FAILED_STATES}

    def stop(self) -> None:
        self.transition("stop", "ORBIT")

    def land(self) -> None:
        self.transition("land", "INIT")

    def run(
        self,
        run_id: str,
        config: Any | None,
        duration: float | None = None,
        until: Until | None = None,
        watcher: MetricWatcher | None = None,
        progress: ProgressCallback | None = None,
        land: bool = True,
    ) -> str:
        """The whole sequence: prepare, start, hold, stop, (land). Returns why the hold ended."""
        self.prepare(config)
        if watcher is not None:
            watcher.reset()
        self.start(run_id)
        reason = self.hold(duration, until, watcher, progress)
        self.stop()
        if land:
            self.land()
        return reason

    def recover(self, land: bool = False) -> dict[str, str]:
        """After a failure or cancel: stop the run this object started, if it still runs
        (and land, if asked); returns the final states.

        A run somebody else started is never touched. Never raises; satellites in ERROR or
        SAFE are left as they are.
        """
        self.cancel.clear()
        if self.started_run is None:
            return self.poll_states()
        try:
            states = self.wait_settled()
            running = [n for n, s in states.items() if s == "RUN"]
            if running:
                self.transition("stop", "ORBIT", running)
            if land:
                orbit = [n for n, s in self.poll_states().items() if s == "ORBIT"]
                if orbit:
                    self.transition("land", "INIT", orbit)
        except RunError as exc:
            self.log(f"recovery incomplete: {exc}")
        return self.poll_states()

    def close(self) -> None:
        if self._own_view:
            self.view.close()
