"""Runtime: the standard command table, built from a narrow view of a satellite.

:func:`standard_commands` returns the :class:`~constellation.core.commands.CommandSpec` entries
every satellite answers (``get_*``, the transitions, ``shutdown``, ``_interrupt``,
``_failure``). The table sees the satellite only through :class:`CommandView`: a few read-only
facts and five actions. These handlers are framework code and run in the loop thread: they
answer at once and never call user hooks (a transition only *begins* here; its job runs in the
hook worker).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from constellation import __version__
from constellation.core.commands import CommandRegistry, CommandResult, CommandSpec, Param
from constellation.core.config import Configuration
from constellation.core.fsm import Command
from constellation.core.roles import Role
from constellation.core.states import State
from constellation.errors import IncompleteCommandError, InvalidStateError
from constellation.net.monitoring import STATUS
from constellation.protocol.common import validate_run_id

__all__ = ["SHUTDOWN_STATES", "CommandView", "standard_commands"]

#: States in which ``shutdown`` is allowed.
SHUTDOWN_STATES = frozenset({State.NEW, State.INIT, State.SAFE, State.ERROR})


class CommandView(Protocol):
    """What the standard commands read from and ask of a satellite."""

    @property
    def canonical_name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def state(self) -> State: ...
    @property
    def last_changed(self) -> datetime: ...
    @property
    def role(self) -> Role: ...
    @property
    def config(self) -> Configuration: ...
    @property
    def commands(self) -> CommandRegistry: ...
    @property
    def supports_reconfigure(self) -> bool: ...
    @property
    def log(self) -> logging.Logger: ...

    def transition(self, command: Command, argument: Any = None) -> CommandResult:
        """Begin ``command`` (its argument: configuration map, run id or partial map)."""

    def request_shutdown(self) -> None: ...
    def after_reply(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` once the reply to the command being handled was sent."""

    def interrupt(self, reason: str) -> bool: ...
    def fail(self, reason: str, error: BaseException | None = None) -> None: ...


def standard_commands(view: CommandView) -> list[CommandSpec]:
    """The standard commands of ``view``'s satellite, in ``get_commands`` order."""
    specs = [
        _text("get_name", "Canonical name of this satellite.", lambda: view.canonical_name),
        _text("get_version", "Version of this satellite.", lambda: view.version),
        _text("get_cnstln_version", "Version of the framework.", lambda: __version__),
        _text("get_status", "Current status text.", lambda: view.status),
        _text("get_run_id", "Identifier of the current or last run.", lambda: view.run_id),
        CommandSpec("get_commands", lambda: _listing(view.commands.public(), ""), _PUBLIC),
        CommandSpec("_get_commands", lambda: _listing(view.commands.hidden(), "hidden "), _HIDDEN),
        CommandSpec("get_state", lambda: _state(view), "Current state (name, code, time)."),
        CommandSpec(
            "get_config",
            lambda: CommandResult("Effective configuration", view.config.effective()),
            "The effective configuration.",
        ),
        CommandSpec(
            "get_role",
            lambda: CommandResult(view.role.name, view.role.flags),
            "Autonomy role and its heartbeat flags.",
        ),
        CommandSpec(
            "initialize",
            lambda config: view.transition(Command.initialize, config),
            "Initialize with a configuration map (NEW, INIT, SAFE, ERROR -> INIT).",
            (Param("config", dict),),
            raw_payload=True,
        ),
        _transition(view, Command.launch, "Launch: INIT -> ORBIT."),
        _transition(view, Command.land, "Land: ORBIT -> INIT."),
        CommandSpec(
            "start",
            lambda run_id: _start(view, run_id),
            "Start a run with the given run identifier: ORBIT -> RUN.",
            (Param("run_id", str),),
            raw_payload=True,
        ),
        _transition(view, Command.stop, "Stop the run: RUN -> ORBIT."),
    ]
    if view.supports_reconfigure:
        specs.append(
            CommandSpec(
                "reconfigure",
                lambda partial: view.transition(Command.reconfigure, partial),
                "Apply a partial configuration map in ORBIT.",
                (Param("partial", dict),),
                raw_payload=True,
            )
        )
    specs += [
        CommandSpec(
            "shutdown",
            lambda: _shutdown(view),
            "Shut the satellite down (NEW, INIT, SAFE, ERROR).",
            allowed_states=SHUTDOWN_STATES,
        ),
        CommandSpec("_interrupt", lambda: _interrupt(view), "Interrupt to SAFE (debugging)."),
        CommandSpec("_failure", lambda: _failure(view), "Go to ERROR (debugging)."),
    ]
    return specs


_PUBLIC = "List the public commands."
_HIDDEN = "List the hidden commands."


def _text(name: str, description: str, fn: Callable[[], str]) -> CommandSpec:
    return CommandSpec(name, lambda: CommandResult(fn()), description)


def _transition(view: CommandView, command: Command, description: str) -> CommandSpec:
    return CommandSpec(command.value, lambda: view.transition(command), description)


def _listing(commands: dict[str, str], kind: str) -> CommandResult:
    return CommandResult(f"{len(commands)} {kind}commands known", commands)


def _state(view: CommandView) -> CommandResult:
    state, changed = view.state, view.last_changed
    tags = {"last_changed": changed, "last_changed_iso": changed.isoformat()}
    return CommandResult(state.name, int(state), tags)


def _start(view: CommandView, run_id: str) -> CommandResult:
    try:
        validate_run_id(run_id)
    except ValueError as exc:
        raise IncompleteCommandError(f"argument 'run_id': {exc}") from exc
    return view.transition(Command.start, run_id)


def _shutdown(view: CommandView) -> CommandResult:
    view.log.log(STATUS, "shutdown requested")
    view.after_reply(view.request_shutdown)  # the reply goes out first, then we close
    return CommandResult("Shutting down")


def _interrupt(view: CommandView) -> CommandResult:
    if not view.interrupt("interrupt requested by command"):
        raise InvalidStateError(f"Command '_interrupt' not allowed in state {view.state.name}")
    return CommandResult("transitioning", Command.interrupt.value)


def _failure(view: CommandView) -> CommandResult:
    view.fail("failure requested by command")
    return CommandResult("Failed on request")
