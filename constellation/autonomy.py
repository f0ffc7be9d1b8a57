"""Assembly layer: what a satellite does about its peers without any controller.

Heartbeat events (from the tracker) are turned into reactions by the role rules of
``core.roles``: log, mark the run degraded, or interrupt to SAFE. Conditional transitions
(``_conditions.require_<transition>_after``) wait here, in the worker thread, until the listed
peers reached the target state, and fail on timeout or when a peer is in ERROR or gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from constellation.core.config import FrameworkConfig
from constellation.core.fsm import Command
from constellation.core.heartbeat_tracker import PeerEvent
from constellation.core.roles import PeerEventKind, reaction
from constellation.core.states import State
from constellation.errors import TransitionError

if TYPE_CHECKING:
    from constellation.satellite import Satellite

__all__ = ["TRANSITION_OF", "Autonomy"]

#: Command -> name of its transitional state, as used in ``require_<name>_after``.
TRANSITION_OF: dict[Command, str] = {
    Command.initialize: "initializing",
    Command.launch: "launching",
    Command.land: "landing",
    Command.start: "starting",
    Command.stop: "stopping",
}


class Autonomy:
    """Role reactions and conditional transitions of one satellite."""

    def __init__(self, satellite: Satellite) -> None:
        self._sat = satellite
        self.log = logging.getLogger(f"{satellite.log.name}.autonomy")
        self._changed = threading.Condition()
        self._conditions: dict[str, list[str]] = {}
        self._timeout = 30.0
        self._departed: set[str] = set()

    def configure(self, framework: FrameworkConfig) -> None:
        """Take the conditions of a new configuration (already checked for self-references)."""
        self._conditions = {t.name: list(p) for t, p in framework.conditions.items()}
        self._timeout = framework.transition_timeout

    # --- peer events (loop thread) -----------------------------------------------------------
    def on_peer_events(self, events: list[PeerEvent]) -> None:
        for event in events:
            if event.kind is PeerEventKind.DEPARTED:
                self._departed.add(event.name.lower())
            elif event.kind in (PeerEventKind.JOINED, PeerEventKind.REVIVED):
                self._departed.discard(event.name.lower())
            self._react(event)
        self.state_changed()

    def _react(self, event: PeerEvent) -> None:
        in_operation = self._sat.state in (State.ORBIT, State.RUN)
        decision = reaction(event.flags, event.kind, in_operation)
        what = f"{event.name} {event.kind.value}" + (f" ({event.detail})" if event.detail else "")
        if decision.interrupt:
            self._sat.interrupt(what)
        elif decision.degrade:
            self._sat.mark_run_degraded(what)
        elif decision.log:
            level = logging.WARNING if in_operation else logging.INFO
            self.log.log(level, "peer %s", what)

    # --- waiting -------------------------------------------------------------------------------
    def state_changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def await_conditions(self, command: Command) -> None:
        """Block until the peers this transition depends on reached its target state."""
        transition = TRANSITION_OF.get(command)
        peers = self._conditions.get(transition or "", [])
        if not peers:
            return
        target = State[transition or ""].target
        pending = list(peers)
        deadline = time.monotonic() + self._timeout
        self._sat.set_status(f"Waiting for {', '.join(pending)} to reach {target.name}")
        while pending:
            pending = [p for p in pending if not self._reached(p, target)]
            if not pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransitionError(
                    f"{transition} timed out after {self._timeout:g} s waiting for "
                    f"{', '.join(pending)} to reach {target.name}"
                )
            self.wait_change(min(remaining, 0.5))

    def _reached(self, peer: str, target: State) -> bool:
        tracker = self._sat.heartbeats.tracker if self._sat.heartbeats else None
        info = tracker.get(peer) if tracker is not None else None
        if info is None:
            if peer.lower() in self._departed:
                raise TransitionError(f"required peer {peer} is gone")
            return False
        if not info.alive:
            raise TransitionError(f"required peer {peer} is dead (no heartbeats)")
        if info.state == State.ERROR:
            raise TransitionError(f"required peer {peer} is in ERROR")
        return info.state == target
