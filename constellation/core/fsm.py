"""Core layer: the satellite finite-state machine (docs/state-machine.md).

The transition table is declared once, on a python-statemachine class; :class:`SatelliteFSM`
wraps it with a lock and speaks :class:`~constellation.core.states.State` and
:class:`Command`. A transition happens in two steps: :meth:`SatelliteFSM.begin` enters the
transitional state, :meth:`SatelliteFSM.complete` (or :meth:`SatelliteFSM.fail`) leaves it. No
hooks run here; the satellite runs its ``do_*`` hooks between the two calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from types import MappingProxyType

import statemachine as sm
from statemachine.exceptions import TransitionNotAllowed

from constellation.core.states import State
from constellation.errors import InvalidStateError

# python-statemachine logs every macro/micro step at DEBUG; our own "state A -> B" lines say it.
logging.getLogger("statemachine").setLevel(logging.INFO)

__all__ = [
    "ALLOWED_COMMANDS",
    "Command",
    "SatelliteFSM",
    "StateChangeCallback",
    "mermaid_diagram",
]

StateChangeCallback = Callable[[State, State], None]


class Command(str, Enum):
    """The transition commands; the value is the CSCP command name."""

    initialize = "initialize"
    launch = "launch"
    land = "land"
    start = "start"
    stop = "stop"
    reconfigure = "reconfigure"
    interrupt = "interrupt"


class _Machine(sm.StateMachine):
    """The transition table; state values are the wire codes of :class:`State`."""

    NEW = sm.State(initial=True, value=int(State.NEW))
    initializing = sm.State(value=int(State.initializing))
    INIT = sm.State(value=int(State.INIT))
    launching = sm.State(value=int(State.launching))
    ORBIT = sm.State(value=int(State.ORBIT))
    landing = sm.State(value=int(State.landing))
    reconfiguring = sm.State(value=int(State.reconfiguring))
    starting = sm.State(value=int(State.starting))
    RUN = sm.State(value=int(State.RUN))
    stopping = sm.State(value=int(State.stopping))
    interrupting = sm.State(value=int(State.interrupting))
    SAFE = sm.State(value=int(State.SAFE))
    ERROR = sm.State(value=int(State.ERROR))

    initialize = initializing.from_(NEW, INIT, SAFE, ERROR)
    launch = INIT.to(launching)
    land = ORBIT.to(landing)
    start = ORBIT.to(starting)
    stop = RUN.to(stopping)
    reconfigure = ORBIT.to(reconfiguring)
    interrupt = interrupting.from_(ORBIT, RUN)
    complete = (
        initializing.to(INIT)
        | launching.to(ORBIT)
        | landing.to(INIT)
        | reconfiguring.to(ORBIT)
        | starting.to(RUN)
        | stopping.to(ORBIT)
        | interrupting.to(SAFE)
    )
    fail = ERROR.from_(
        NEW,
        initializing,
        INIT,
        launching,
        ORBIT,
        landing,
        reconfiguring,
        starting,
        RUN,
        stopping,
        interrupting,
        SAFE,
        ERROR,
    )


def _allowed_table() -> dict[State, frozenset[Command]]:
    """Commands allowed per state, read off the machine definition."""
    commands = {command.value for command in Command}
    table: dict[State, frozenset[Command]] = {State.DEAD: frozenset()}
    for value, machine_state in _Machine.states_map.items():
        events = {event.id for event in machine_state.transitions.unique_events}
        table[State(value)] = frozenset(Command(event) for event in events & commands)
    return table


ALLOWED_COMMANDS = MappingProxyType(_allowed_table())
"""Read-only map: state → the commands that may begin a transition from it."""


class SatelliteFSM:
    """Thread-safe satellite state machine starting in NEW.

    ``on_change(old, new)`` is called after every actual state change, outside the lock, in the
    thread that caused the change.
    """

    def __init__(self, on_change: StateChangeCallback | None = None) -> None:
        self._lock = threading.Lock()
        self._machine = _Machine()
        self._on_change = on_change

    @property
    def state(self) -> State:
        """The current state."""
        with self._lock:
            return self._current()

    @staticmethod
    def allowed_commands(state: State) -> frozenset[Command]:
        """The commands that may begin a transition from ``state``."""
        return ALLOWED_COMMANDS[State(state)]

    def begin(self, command: Command | str) -> State:
        """Enter the transitional state of ``command``; return it.

        Raises :class:`InvalidStateError` if the command is not allowed in the current state,
        including while another transition is in progress.
        """
        command = Command(command)
        with self._lock:
            old = self._current()
            if command not in ALLOWED_COMMANDS[old]:
                raise InvalidStateError(_not_allowed_text(command, old))
            new = self._send(command.value)
        self._notify(old, new)
        return new

    def complete(self) -> State:
        """Leave the current transitional state for its target; return the target.

        Raises :class:`InvalidStateError` in a steady state.
        """
        with self._lock:
            old = self._current()
            if old.is_steady:
                raise InvalidStateError(f"Cannot complete: no transition in progress in {old.name}")
            new = self._send("complete")
        self._notify(old, new)
        return new

    def fail(self) -> State:
        """Go to ERROR from any state (ERROR stays ERROR); return ERROR."""
        with self._lock:
            old = self._current()
            new = self._send("fail")
        self._notify(old, new)
        return new

    def _current(self) -> State:
        return State(self._machine.current_state_value)

    def _send(self, event: str) -> State:
        try:
            self._machine.send(event)
        except TransitionNotAllowed as exc:  # pragma: no cover - guarded by the table
            raise InvalidStateError(f"{event} not allowed in {self._current().name}") from exc
        return self._current()

    def _notify(self, old: State, new: State) -> None:
        if self._on_change is not None and old is not new:
            self._on_change(old, new)


def _not_allowed_text(command: Command, state: State) -> str:
    text = f"Command '{command.value}' not allowed in state {state.name}"
    if not state.is_steady:
        text += " (a transition is in progress)"
    return text


def mermaid_diagram() -> str:
    """The transition table as a Mermaid state diagram (embedded in docs/state-machine.md)."""
    lines = ["stateDiagram-v2", "    [*] --> NEW"]
    for source in _Machine.states:
        for transition in source.transitions:
            if transition.event == "fail" and source.id != "NEW":
                continue  # drawn once, from NEW, to keep the picture readable
            label = "any state: failure" if transition.event == "fail" else transition.event
            lines.append(f"    {source.id} --> {transition.target.id}: {label}")
    return "\n".join(lines)
