"""Assembly layer: what a satellite does about its peers without any controller.

Heartbeat events (from the tracker) are turned into reactions by the role rules of
``core.roles``: log, mark the run degraded, or interrupt to SAFE. Reactions only act while the
satellite is in ORBIT or RUN; a degraded mark needs a run (``starting`` or RUN). Conditional
transitions (``_conditions.require_<transition>_after``) wait here, in the worker thread, until
the listed peers reached the target state, and fail on timeout or at once when a peer is in
ERROR, dead or gone. The peer view is read through the receiver's thread-safe snapshots.

Autonomy never sees the satellite: it gets the few things it reads and does as callables
(:class:`AutonomyLinks`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from constellation.core.config import FrameworkConfig
from constellation.core.fsm import Command
from constellation.core.heartbeat_tracker import PeerEvent, PeerInfo
from constellation.core.roles import PeerEventKind, Role, reaction
from constellation.core.states import State
from constellation.errors import TransitionError

__all__ = ["TRANSITION_OF", "Autonomy", "AutonomyLinks"]

#: Command -> name of its transitional state, as used in ``require_<name>_after``.
TRANSITION_OF: dict[Command, str] = {
    Command.initialize: "initializing",
    Command.launch: "launching",
    Command.land: "landing",
    Command.start: "starting",
    Command.stop: "stopping",
}


@dataclass(frozen=True)
class AutonomyLinks:
    """What autonomy reads from and asks of its satellite (all thread-safe)."""

    #: The satellite's current state.
    state: Callable[[], State]
    #: The latest view of a peer by canonical name (None: never seen).
    peer: Callable[[str], PeerInfo | None]
    #: Interrupt to SAFE with a reason; False if not in ORBIT or RUN.
    interrupt: Callable[[str], bool]
    #: Mark the current run degraded with a reason.
    mark_degraded: Callable[[str], None]
    #: Set the status text.
    set_status: Callable[[str], None]
    #: True once the satellite is closing.
    closing: Callable[[], bool]


class Autonomy:
    """Role reactions and conditional transitions of one satellite."""

    def __init__(self, links: AutonomyLinks, log_name: str) -> None:
        self._links = links
        self.log = logging.getLogger(f"{log_name}.autonomy")
        self._changed = threading.Condition()
        self._generation = 0  # counts notifications, so that none is missed between checks
        self._conditions: dict[str, list[str]] = {}
        self._timeout = 30.0
        self._departed: set[str] = set()

    def configure(self, framework: FrameworkConfig) -> None:
        """Take the conditions of a new configuration (already checked for self-references)."""
        self._conditions = {t.name: list(p) for t, p in framework.conditions.items()}
        self._timeout = framework.transition_timeout

    def conditions(self, transition: str) -> list[str]:
        """The peers the transitional state ``transition`` (e.g. ``"starting"``) waits for."""
        return list(self._conditions.get(transition, []))

    # --- peer events (loop thread) -----------------------------------------------------------
    def on_peer_events(self, events: list[PeerEvent]) -> None:
        for event in events:
            key = event.name.lower()
            if event.kind is PeerEventKind.DEPARTED:
                self._departed.add(key)
            elif event.kind in (PeerEventKind.JOINED, PeerEventKind.REVIVED):
                self._departed.discard(key)
            self._react(event)
        self.state_changed()

    def _react(self, event: PeerEvent) -> None:
        state = self._links.state()
        in_operation = state in (State.ORBIT, State.RUN)
        decision = reaction(event.flags, event.kind, in_operation)
        if not decision.log:
            if event.kind is PeerEventKind.LIFE_LOST:
                self.log.debug("peer %s lost a life (%s)", event.name, event.detail)
            return
        role = Role.from_flags(event.flags).name
        what = f"{event.name} {event.kind.value}" + (f" ({event.detail})" if event.detail else "")
        if decision.degrade and state in _RUNNING:
            self._links.mark_degraded(f"{role} peer {what}")
        if decision.interrupt:
            if self._links.interrupt(what):
                return
            self.log.warning("%s peer %s, but %s cannot be interrupted", role, what, state.name)
        elif not decision.degrade:
            level = logging.WARNING if in_operation else logging.INFO
            self.log.log(level, "%s peer %s", role, what)
        elif state not in _RUNNING:
            self.log.warning("%s peer %s (no run to mark degraded)", role, what)

    # --- waiting -------------------------------------------------------------------------------
    def state_changed(self) -> None:
        """Wake everybody waiting for a change of this satellite's or a peer's state."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    @property
    def generation(self) -> int:
        """Number of changes notified so far (pass it to :meth:`wait_change`)."""
        with self._changed:
            return self._generation

    def wait_change(self, timeout: float, since: int | None = None) -> None:
        """Wait up to ``timeout`` s for a change; with ``since``, return at once if one
        happened after :attr:`generation` returned ``since``."""
        with self._changed:
            if since is None:
                self._changed.wait(timeout)
            else:
                self._changed.wait_for(lambda: self._generation != since, timeout)

    def await_conditions(self, command: Command) -> None:
        """Block until the peers this transition depends on reached its target state.

        Runs in the worker thread at the start of the transition. Raises
        :class:`TransitionError` on timeout (naming the peers still missing) or at once when a
        listed peer is in ERROR, dead or gone, or when the satellite is closed meanwhile.
        Returns early, without error, if the satellite left the transitional state meanwhile
        (failure); the caller checks the state.
        """
        transition = TRANSITION_OF.get(command)
        if transition is None:
            return
        peers = self._conditions.get(transition, [])
        if not peers:
            return
        transitional = State[transition]
        target = transitional.target
        deadline = time.monotonic() + self._timeout
        pending = list(peers)
        shown: list[str] = []
        while True:
            seen = self.generation
            pending = [p for p in pending if not self._reached(p, target)]
            if not pending:
                self.log.info("%s: %s reached %s", transition, ", ".join(peers), target.name)
                return
            if self._links.state() is not transitional:
                return
            if self._links.closing():
                raise TransitionError(f"{transition} abandoned: the satellite is shutting down")
            if pending != shown:
                shown = list(pending)
                self._links.set_status(f"Waiting for {', '.join(pending)} to reach {target.name}")
                self.log.info("%s waits for %s to reach %s", transition, shown, target.name)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransitionError(
                    f"{transition} timed out after {self._timeout:g} s waiting for "
                    f"{', '.join(self._describe(p) for p in pending)} to reach {target.name}"
                )
            self.wait_change(min(remaining, 0.5), since=seen)

    def _peer(self, name: str) -> PeerInfo | None:
        return self._links.peer(name)

    def _describe(self, peer: str) -> str:
        info = self._peer(peer)
        if info is None:
            return f"{peer} (never seen)"
        return f"{peer} (in {_state_name(info.state)})"

    def _reached(self, peer: str, target: State) -> bool:
        info = self._peer(peer)
        if info is None:
            if peer.lower() in self._departed:
                raise TransitionError(f"required peer {peer} is gone (departed)")
            return False
        if not info.alive or info.state == State.DEAD:
            raise TransitionError(f"required peer {peer} is dead (no heartbeats)")
        if info.state == State.ERROR:
            status = f": {info.status}" if info.status else ""
            raise TransitionError(f"required peer {peer} is in ERROR{status}")
        return info.state == target


#: States in which a run exists that can be marked degraded.
_RUNNING = frozenset({State.starting, State.RUN})


def _state_name(code: int) -> str:
    try:
        return State(code).name
    except ValueError:
        return f"0x{code:02X}"
