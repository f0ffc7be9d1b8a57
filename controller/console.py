"""Controller layer: the interactive console (IPython, or the stdlib ``code`` module as fallback).

The namespace holds ``ctl`` (the :class:`~controller.controller.Controller`), ``cfg`` (the
loaded configuration, or None), ``constellation`` (the group: ``constellation.<Type>`` and
``constellation.<Type>.<Name>``, with tab completion of satellites and of each satellite's
commands as listed by ``get_commands``, and their descriptions as help), ``status()`` and
``wait(state)``. The prompt shows the group, the number of satellites and the global state.
Leaving the console only closes the controller; the satellites are not affected.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from constellation.protocol.common import NO_PAYLOAD
from constellation.terminal import colour_wanted
from controller.conditions import unused_keys_in
from controller.config import ControllerConfig, config_warnings, load_config
from controller.console_output import (
    ONE_LINE_ERRORS,
    ConsoleError,
    ConsoleReply,
    ReplyMap,
    UnknownNameError,
)
from controller.console_proxies import GroupProxy, SatelliteProxy, TypeProxy
from controller.controller import Controller, Reply
from controller.group import GroupView

log = logging.getLogger("constellation.console")

__all__ = [
    "ALARM_STATES",
    "ONE_LINE_ERRORS",
    "ConsoleError",
    "ConsoleReply",
    "GroupProxy",
    "ReplyMap",
    "SatelliteProxy",
    "Session",
    "TypeProxy",
    "UnknownNameError",
    "make_namespace",
    "prompt_text",
    "run_console",
]

#: States the console announces with a line of their own as soon as a satellite enters them.
ALARM_STATES = frozenset({"ERROR", "SAFE", "DEAD"})
#: Commands whose single argument is the whole payload (not a list of arguments).
_RAW_PAYLOAD = frozenset({"start", "reconfigure"})
#: Commands offered on a type or the whole group (besides those all members list).
_GROUP_COMMANDS = {
    "initialize": "Initialize with a configuration (default: cfg): NEW/INIT/SAFE/ERROR -> INIT.",
    "launch": "Launch: INIT -> ORBIT.",
    "land": "Land: ORBIT -> INIT.",
    "start": "Start run `run_id`: ORBIT -> RUN.",
    "stop": "Stop the run: RUN -> ORBIT.",
    "reconfigure": "Apply a partial configuration map in ORBIT.",
    "shutdown": "Shut the satellites down (NEW, INIT, SAFE, ERROR).",
    "get_state": "Current state of each satellite.",
    "get_status": "Current status text of each satellite.",
    "get_run_id": "Identifier of the current or last run of each satellite.",
    "get_config": "Effective configuration of each satellite.",
}


def _run_number(run_id: str) -> int:
    """``n`` of a run id ``<prefix>_<n>`` (0 if it has no number)."""
    tail = run_id.rpartition("_")[2]
    return int(tail) if run_id.count("_") and tail.isdigit() else 0


class Session:
    """What the console objects share: the controller, the view and the namespace."""

    def __init__(
        self,
        controller: Controller,
        view: GroupView,
        namespace: Mapping[str, Any],
        out: Callable[[str], None] = print,
    ) -> None:
        self.ctl = controller
        self.view = view
        self.namespace = namespace
        self.out = out
        self._commands: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="console-commands")
        self._closed = False
        view.add_listener(self.prefetch)
        controller.on_state_change(self._on_state_change)
        controller.on_leave(self._on_leave)
        self.prefetch()

    def _on_state_change(self, name: str, old: str, new: str) -> None:
        """Tell the operator at once when a satellite turns ERROR, SAFE or DEAD."""
        if self._closed:
            return
        if new == "INIT" and old == "initializing":
            unused = unused_keys_in(self.ctl.statuses.get(name, ""))
            if unused:
                self.out(f"! {name} did not use: {', '.join(unused)} (misspelt?)")
            return
        if new not in ALARM_STATES:
            return
        if new == "DEAD" and name not in self.ctl.satellites:
            return  # it left: announced by _on_leave
        status = self.ctl.statuses.get(name, "")
        self.out(f"! {name}: {old} -> {new}" + (f": {status}" if status else ""))

    def _on_leave(self, name: str) -> None:
        if not self._closed:
            self.out(f"! {name} left the group (last state {self.ctl.last_state(name)})")

    @property
    def config(self) -> ControllerConfig | None:
        """The namespace's current ``cfg`` (so ``cfg = load_config(...)`` takes effect)."""
        cfg = self.namespace.get("cfg")
        return None if cfg is None else load_config(cfg)

    def prefetch(self) -> None:
        """Ask new satellites for their commands in the background (for instant completion)."""
        with self._lock:
            new = [n for n in self.ctl.satellites if n not in self._commands]
            new = [n for n in new if n not in self._pending]
            self._pending.update(new)
        for name in new:
            try:
                self._pool.submit(self._fetch, name)
            except RuntimeError as exc:  # the session was closed meanwhile
                log.debug("not fetching the commands of %s: %s", name, exc)
                return

    def _fetch(self, name: str) -> None:
        try:
            self.commands(name)
        finally:
            with self._lock:
                self._pending.discard(name)

    def commands(self, name: str) -> dict[str, str]:
        """Command name -> description of satellite ``name`` (asked once, then cached)."""
        with self._lock:
            known = self._commands.get(name)
        if known is not None:
            return known
        handle = self.ctl.satellites.get(name)
        if handle is None:
            return {}
        try:
            reply = handle.command("get_commands", timeout=self.ctl.timeout)
        except TimeoutError as exc:  # no completion for it now; asked again next time
            log.debug("no command list from %s: %s", name, exc)
            return {}
        if not reply.ok or not isinstance(reply.payload, dict):
            return {}
        commands = {str(k): str(v) for k, v in reply.payload.items()}
        with self._lock:
            self._commands[name] = commands
        return commands

    def close(self) -> None:
        """Stop background fetching and notices."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def common_commands(self, names: Iterable[str]) -> dict[str, str]:
        """Commands every satellite of ``names`` offers, plus the group transitions."""
        sets = [self.commands(n) for n in names]
        common = set.intersection(*(set(s) for s in sets)) if sets else set()
        result = {c: sets[0][c] for c in sorted(common)}
        result.update(
            {
                c: d
                for c, d in _GROUP_COMMANDS.items()
                if c not in result and (c != "reconfigure" or not sets)
            }
        )
        return result

    def send(self, verb: str, args: tuple[Any, ...], names: list[str]) -> ReplyMap:
        """Send ``verb`` with ``args`` to ``names``; initialize uses the configuration."""
        if not names:
            return ReplyMap()
        if verb.lower() == "initialize":
            return self._wrap(self._initialize(args, names), "initialize")
        if verb.lower() == "start" and not args:
            args = (self.next_run_id(),)
            self.out(f"starting run {args[0]}")
        if verb.lower() in _RAW_PAYLOAD:
            if len(args) != 1:
                raise TypeError(f"{verb}() takes exactly one argument ({len(args)} given)")
            payload = dict(args[0]) if isinstance(args[0], Mapping) else args[0]
        else:
            payload = list(args) if args else NO_PAYLOAD
        return self._wrap(self.ctl.command(verb, payload, targets=names), verb.lower())

    def _wrap(self, replies: Mapping[str, Reply], verb: str) -> ReplyMap:
        return ReplyMap({n: ConsoleReply.of(r, n, verb) for n, r in replies.items()})

    def next_run_id(self) -> str:
        """The next of the group's run sequence: ``<prefix>_<n+1>`` after ``<prefix>_<n>``."""
        from controller.scan import next_run_number

        last = max((self.view.run_id(n) for n in self.ctl.satellites), key=_run_number, default="")
        prefix = last.rpartition("_")[0] if _run_number(last) else "run"
        return f"{prefix}_{next_run_number(self.ctl, prefix)}"

    def _initialize(self, args: tuple[Any, ...], names: list[str]) -> dict[str, Reply]:
        if len(args) > 1:
            raise TypeError(f"initialize() takes at most one argument ({len(args)} given)")
        config = load_config(args[0]) if args else self.config
        if config is None:
            raise ValueError("no configuration: pass one, or start the console with -c FILE")
        if set(names) == set(self.ctl.satellites):
            for warning in config_warnings(config, names):
                self.out(f"warning: {warning}")
        return self.ctl.initialize(config, targets=names)


def make_namespace(
    controller: Controller, view: GroupView, config: ControllerConfig | None
) -> dict[str, Any]:
    """The console namespace: ``ctl``, ``cfg``, ``constellation``, ``status``, ``wait``..."""
    from controller.runs import Until
    from controller.scan import Parameter, Scan

    namespace: dict[str, Any] = {}
    session = Session(controller, view, namespace)

    def status() -> None:
        """Print every satellite with its state, role, last heartbeat, run and status."""
        print(view.table(colour=colour_wanted(sys.stdout)))

    def wait(state: str, timeout: float = 30.0, targets: Iterable[str] | None = None) -> None:
        """Wait until every satellite (or each of ``targets``) is in ``state``.

        Raises on ERROR or timeout.
        """
        names = None if targets is None else [targets] if isinstance(targets, str) else targets
        controller.await_state(state, timeout=timeout, targets=names)
        if state.upper() == "RUN":
            view.refresh_run_ids()  # so that the next prompt shows the run
        count = len(controller.satellites) if names is None else len(list(names))
        print(f"{'all ' if names is None else ''}{count} satellites in {state.upper()}")

    namespace.update(
        ctl=controller,
        cfg=config,
        constellation=GroupProxy(session),
        status=status,
        wait=wait,
        load_config=load_config,
        Scan=Scan,
        Parameter=Parameter,
        Until=Until,
    )
    return namespace


# The shells live in their own module; re-exported here, where the CLI and tests import them.
from controller.console_shell import prompt_text, run_console  # noqa: E402
