"""Controller layer: a live view of a group for the console and the command-line tools.

:class:`GroupView` sits on top of a :class:`~controller.controller.Controller` (using only its
public API) and adds what an operator looks at: waiting for discovery to settle, the run
identifier of every satellite (asked with ``get_run_id``, so a controller started in the middle
of a run picks it up), the time since each satellite's last heartbeat, and the status table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from constellation.terminal import plain_table, render, state_text
from controller.controller import Controller, Reply
from controller.handles import ask_quietly

log = logging.getLogger("constellation.controller.group")

__all__ = [
    "GroupView",
    "SatelliteRow",
    "colour_state",
    "format_table",
    "reply_lines",
]


def colour_state(state: str, colour: bool = True) -> str:
    """``state`` in its terminal style (plain text unless ``colour``)."""
    return render(state_text(state), colour=colour) if colour else state


@dataclass(frozen=True)
class SatelliteRow:
    """One line of the status table."""

    name: str
    state: str
    role: str
    heartbeat_age: float | None
    run_id: str
    status: str


def format_table(rows: Iterable[SatelliteRow], colour: bool = False) -> str:
    """The status table as text (one header line, one line per satellite)."""
    header = ("SATELLITE", "STATE", "ROLE", "LAST BEAT", "RUN ID", "STATUS")
    cells = [
        (
            r.name,
            state_text(r.state),
            r.role,
            "-" if r.heartbeat_age is None else f"{r.heartbeat_age:.1f} s ago",
            r.run_id or "-",
            r.status,
        )
        for r in rows
    ]
    text = render(plain_table(header, cells), colour=colour, width=400)
    return "\n".join(line.rstrip() for line in text.splitlines())


class GroupView:
    """Run identifiers, heartbeat ages, waits and the status table of a controller's group."""

    def __init__(self, controller: Controller) -> None:
        self.ctl = controller
        self._lock = threading.Condition()
        self._run_ids: dict[str, str] = {}
        self._fetched: dict[str, float] = {}
        self._changes = 0
        self._listeners: list[Callable[[], None]] = []
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="group-view")
        self._ask_pool = ThreadPoolExecutor(16, thread_name_prefix="group-ask")
        self._closed = False
        controller.on_state_change(self._on_state_change)
        controller.on_join(self._on_join)
        controller.on_leave(self._on_leave)
        for name in controller.satellites:
            self._on_join(name)

    # --- events -------------------------------------------------------------------------------
    def _notify(self) -> None:
        with self._lock:
            self._changes += 1
            self._lock.notify_all()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a broken display must not stop the controller
                log.exception("group view listener %r failed", listener)

    def _on_state_change(self, name: str, old: str, new: str) -> None:
        if new == "RUN" and old != "RUN":
            self._submit(name)
        self._notify()

    def _on_join(self, name: str) -> None:
        self._submit(name)
        self._notify()

    def _submit(self, name: str) -> None:
        if not self._closed:
            try:
                future = self._pool.submit(self._fetch_run_id, name)
            except RuntimeError:  # shut down meanwhile
                log.debug("run id of %s not fetched: the group view is closing", name)
                return
            future.add_done_callback(_log_failure)

    def _on_leave(self, name: str) -> None:
        self._notify()

    def _fetch_run_id(self, name: str) -> None:
        reply = ask_quietly(self.ctl.satellites, name, "get_run_id", self.ctl.timeout)
        if reply is not None and reply.ok:
            with self._lock:
                self._run_ids[name] = reply.verb
                self._fetched[name] = time.monotonic()
        self._notify()

    @property
    def changes(self) -> int:
        """A counter of the changes seen so far (compare two readings to detect news)."""
        return self._changes

    def refresh_run_ids(self) -> None:
        """Ask every satellite for its run identifier now (instead of in the background)."""
        for name in self.names:
            self._fetch_run_id(name)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from any thread) on every change of states or members."""
        self._listeners.append(listener)

    # --- queries ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Canonical names of the satellites present, sorted."""
        return sorted(self.ctl.satellites)

    def run_id(self, name: str) -> str:
        """The last run identifier ``name`` reported ('' if unknown)."""
        with self._lock:
            return self._run_ids.get(name, "")

    def current_run(self) -> str:
        """The run identifier of the satellites in RUN (the latest learnt; '' if none)."""
        states = self.ctl.states
        with self._lock:
            running = [
                (self._fetched.get(n, 0.0), self._run_ids[n])
                for n in self.names
                if states.get(n) == "RUN" and self._run_ids.get(n)
            ]
        return max(running)[1] if running else ""

    def heartbeat_age(self, name: str) -> float | None:
        """Seconds since the last heartbeat of ``name`` (None before the first)."""
        peer = self.ctl.heartbeats.peer(name)
        return None if peer is None else max(0.0, time.monotonic() - peer.last_seen)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every change); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.2))
        return True

    def discover(
        self,
        expected: Iterable[str] = (),
        count: int = 0,
        timeout: float = 5.0,
        settle: float = 0.5,
    ) -> list[str]:
        """Wait for discovery and return the names present; never raises.

        With ``expected`` names or a ``count``: until they are present. Otherwise until the
        first satellite appeared and then none for ``settle`` seconds. At most ``timeout`` s.
        """
        wanted = {n.lower() for n in expected}
        deadline = time.monotonic() + timeout

        def present() -> set[str]:
            return {n.lower() for n in self.ctl.satellites}

        if wanted or count:
            self.wait(lambda: wanted <= present() and len(present()) >= count, timeout)
            return self.names
        seen = present()
        last_change = time.monotonic()

        def settled() -> bool:
            nonlocal seen, last_change
            now = time.monotonic()
            if present() != seen:
                seen, last_change = present(), now
            return now >= deadline or (bool(seen) and now - last_change >= settle)

        self.wait(settled, timeout)
        return self.names

    def rows(self, timeout: float = 1.0) -> list[SatelliteRow]:
        """One row per satellite: state, role, run id and status, asked of all at once.

        Each satellite gets ``timeout`` seconds per question; one that does not answer keeps
        the controller's view for the rest. DEAD satellites are not asked: their row shows
        ``DEAD (last state)`` and the last status heard.
        """
        names = self.names
        states, statuses = self.ctl.states, self.ctl.statuses
        alive = [n for n in names if states.get(n) != "DEAD"]
        futures = {name: self._ask_pool.submit(self._ask_one, name, timeout) for name in alive}
        rows = []
        for name in names:
            if name not in futures:
                last = self.ctl.last_state(name)
                state = "DEAD" if last == "?" else f"DEAD ({last})"
                rows.append(
                    SatelliteRow(
                        name,
                        state,
                        "?",
                        self.heartbeat_age(name),
                        self.run_id(name),
                        statuses.get(name, ""),
                    )
                )
                continue
            answers = futures[name].result()
            run_id = answers.get("get_run_id")
            if run_id is not None:
                with self._lock:
                    self._run_ids[name] = run_id
            rows.append(
                SatelliteRow(
                    name,
                    answers.get("get_state", states.get(name, "?")),
                    answers.get("get_role", "?"),
                    self.heartbeat_age(name),
                    run_id if run_id is not None else self.run_id(name),
                    answers.get(
                        "get_status", statuses.get(name, f"no answer within {timeout:g} s")
                    ),
                )
            )
        return rows

    def _ask_one(self, name: str, timeout: float) -> dict[str, str]:
        """Ask ``name`` the status questions; stop at the first that is not answered."""
        handle = self.ctl.satellites.get(name)
        answers: dict[str, str] = {}
        if handle is None:
            return answers
        for verb in ("get_state", "get_role", "get_run_id", "get_status"):
            try:
                reply = handle.command(verb, timeout=timeout)
            except Exception as exc:
                log.debug("%s did not answer %s: %s", name, verb, exc)
                break
            if reply.ok:
                answers[verb] = reply.verb
        return answers

    def table(self, colour: bool = False) -> str:
        """The status table, freshly asked for."""
        rows = self.rows()
        if not rows:
            return f"no satellites in group {self.ctl.group}"
        return format_table(rows, colour)

    def summary(self) -> tuple[int, str]:
        """(number of satellites present, global state) without asking anybody."""
        return len(self.ctl.satellites), self.ctl.global_state()

    def close(self) -> None:
        """Stop notifying listeners (the controller keeps its callbacks; they become no-ops)."""
        self._closed = True
        self._listeners.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._ask_pool.shutdown(wait=False, cancel_futures=True)


def reply_lines(replies: dict[str, Reply], payload: bool = False) -> list[str]:
    """``name: TYPE: verb`` lines for a set of replies (sorted by name), as the console shows."""
    lines = []
    for name in sorted(replies):
        reply = replies[name]
        line = f"{name}: {reply.msg_type.name}: {reply.verb}"
        if payload and reply.payload is not None:
            line += f" {reply.payload!r}"
        lines.append(line)
    return lines


def _log_failure(future: Future[None]) -> None:
    """Done callback: an exception of a background fetch is logged, not lost in its future."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("background run-id fetch failed", exc_info=exc)
