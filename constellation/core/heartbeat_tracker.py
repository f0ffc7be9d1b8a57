"""Heartbeat bookkeeping: who is alive, in which state, and what just happened to them.

Layer: ``core`` (pure logic). The I/O layer feeds every received CHP message to
:meth:`HeartbeatTracker.on_heartbeat`, every discovery departure to
:meth:`HeartbeatTracker.on_departure`, and calls :meth:`HeartbeatTracker.check` when
:meth:`HeartbeatTracker.next_deadline` has passed. Each call returns the :class:`PeerEvent` list it
caused; :func:`constellation.core.roles.reaction` turns an event into a reaction. Time is always
the ``now`` argument, in seconds of a monotonic clock; the tracker never reads a clock, and the
sender's timestamp plays no part (clock skew between hosts does not matter).

Rules (docs/autonomy.md#lives, docs/protocols.md#timing):

- States are kept as the integer codes received (unknown codes included); see
  :class:`~constellation.core.states.State` for their names.
- Peers are looked up case-insensitively; the spelling first seen is kept for display.
- Every beat restores all lives. A peer's deadline is ``grace_factor * interval`` after its last
  beat or its last lost life, ``interval`` being the one it announced last (``initial_interval_s``
  while it announced none, i.e. ``interval_ms <= 0``). Reaching a deadline costs one life
  (``LIFE_LOST``); a late ``check`` charges every deadline passed since, so the outcome does not
  depend on how often ``check`` runs. After the last life ``DIED`` is reported once, and the
  peer's state becomes ``DEAD`` (0xFF); dead peers stay listed (``alive`` false) until they depart
  or beat again (``REVIVED``).
- Every change of the reported state gives ``STATE_CHANGED``; entering ERROR or SAFE (including
  joining or reviving in it) also gives ``FAILED``.
- ``IS_EXTRASYSTOLE`` describes one message, not the peer: it is not stored in the peer's flags.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from constellation.core.roles import CHPFlags, PeerEventKind, Role
from constellation.core.states import State

__all__ = [
    "DEAD_STATE",
    "HeartbeatTracker",
    "PeerEvent",
    "PeerEventKind",
    "PeerInfo",
]

#: State code of a peer whose heartbeats stopped (never sent on the wire).
DEAD_STATE = int(State.DEAD)
_FAILED_STATES = frozenset({int(State.SAFE), int(State.ERROR)})


def _state_label(code: int | None) -> str:
    if code is None:
        return "-"
    try:
        return State(code).name
    except ValueError:
        return f"0x{code:02X}"


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """One thing that happened to a peer; ``flags`` are the peer's role flags at that time."""

    kind: PeerEventKind
    name: str
    flags: int
    old_state: int | None = None
    new_state: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Snapshot of what is known about one peer."""

    name: str
    state: int
    flags: int
    role: Role
    interval_s: float
    lives: int
    alive: bool
    last_seen: float
    status: str | None


@dataclass(slots=True)
class _Peer:
    name: str
    state: int
    flags: int
    interval_s: float
    lives: int
    last_seen: float
    timer_start: float
    status: str | None

    def snapshot(self) -> PeerInfo:
        return PeerInfo(
            name=self.name,
            state=self.state,
            flags=self.flags,
            role=Role.from_flags(self.flags),
            interval_s=self.interval_s,
            lives=self.lives,
            alive=self.lives > 0,
            last_seen=self.last_seen,
            status=self.status,
        )


class _PeerView(Mapping[str, PeerInfo]):
    """Immutable name → :class:`PeerInfo` mapping with case-insensitive lookup."""

    def __init__(self, infos: list[PeerInfo]) -> None:
        self._infos = {info.name.lower(): info for info in infos}

    def __getitem__(self, name: str) -> PeerInfo:
        return self._infos[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (info.name for info in self._infos.values())

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._infos


class HeartbeatTracker:
    """Lives, states and roles of the peers whose heartbeats this process receives."""

    def __init__(
        self, lives: int = 3, grace_factor: float = 1.5, initial_interval_s: float = 2.0
    ) -> None:
        if lives < 1:
            raise ValueError(f"lives must be at least 1, got {lives}")
        if not grace_factor > 0 or not initial_interval_s > 0:
            raise ValueError("grace_factor and initial_interval_s must be positive")
        self._max_lives = lives
        self._grace = grace_factor
        self._initial_interval_s = initial_interval_s
        self._peers: dict[str, _Peer] = {}

    @property
    def peers(self) -> Mapping[str, PeerInfo]:
        """Snapshot of all known peers (dead ones included), keyed by display name."""
        return _PeerView([peer.snapshot() for peer in self._peers.values()])

    def get(self, name: str) -> PeerInfo | None:
        """Snapshot of one peer, looked up case-insensitively, or ``None``."""
        peer = self._peers.get(name.lower())
        return None if peer is None else peer.snapshot()

    def on_heartbeat(
        self, name: str, state: int, flags: int, interval_ms: int, status: str | None, now: float
    ) -> list[PeerEvent]:
        """Register a heartbeat of ``name`` received at ``now``; ``status=None`` keeps the last."""
        role_flags = int(flags) & ~int(CHPFlags.IS_EXTRASYSTOLE)
        peer = self._peers.get(name.lower())
        events: list[PeerEvent] = []
        old_state: int | None = None
        if peer is None:
            peer = self._add(name, now)
            events.append(PeerEvent(PeerEventKind.JOINED, peer.name, role_flags, None, state))
        else:
            old_state = peer.state
            if peer.lives == 0:
                events.append(
                    PeerEvent(PeerEventKind.REVIVED, peer.name, role_flags, old_state, state)
                )
        self._refresh(peer, state, role_flags, interval_ms, status, now)
        return events + self._state_events(peer, old_state)

    def check(self, now: float) -> list[PeerEvent]:
        """Charge a life for every deadline passed by ``now``; report losses and deaths."""
        events: list[PeerEvent] = []
        for peer in self._peers.values():
            events.extend(self._check_peer(peer, now))
        return events

    def on_departure(self, name: str, now: float) -> list[PeerEvent]:
        """Forget ``name`` after an orderly departure; unknown names cause no event."""
        peer = self._peers.pop(name.lower(), None)
        if peer is None:
            return []
        detail = f"departed in {_state_label(peer.state)}"
        return [PeerEvent(PeerEventKind.DEPARTED, peer.name, peer.flags, peer.state, None, detail)]

    def next_deadline(self) -> float | None:
        """Earliest ``now`` at which :meth:`check` would report something; ``None`` if never."""
        deadlines = [self._deadline(peer) for peer in self._peers.values() if peer.lives > 0]
        return min(deadlines, default=None)

    # --- internals ----------------------------------------------------------------------------
    def _add(self, name: str, now: float) -> _Peer:
        peer = _Peer(name, 0, 0, self._initial_interval_s, self._max_lives, now, now, None)
        self._peers[name.lower()] = peer
        return peer

    def _refresh(
        self, peer: _Peer, state: int, flags: int, interval_ms: int, status: str | None, now: float
    ) -> None:
        peer.state = state
        peer.flags = flags
        if interval_ms > 0:
            peer.interval_s = interval_ms / 1000.0
        peer.lives = self._max_lives
        peer.last_seen = now
        peer.timer_start = now
        if status is not None:
            peer.status = status

    @staticmethod
    def _state_events(peer: _Peer, old_state: int | None) -> list[PeerEvent]:
        """STATE_CHANGED and FAILED for a peer whose state was ``old_state`` before this beat."""
        events: list[PeerEvent] = []
        if old_state is not None and old_state != peer.state:
            label = f"{_state_label(old_state)} -> {_state_label(peer.state)}"
            events.append(
                PeerEvent(
                    PeerEventKind.STATE_CHANGED, peer.name, peer.flags, old_state, peer.state, label
                )
            )
        if peer.state in _FAILED_STATES and old_state != peer.state:
            detail = f"reported {_state_label(peer.state)}"
            if peer.status:
                detail += f": {peer.status}"
            events.append(
                PeerEvent(
                    PeerEventKind.FAILED, peer.name, peer.flags, old_state, peer.state, detail
                )
            )
        return events

    def _deadline(self, peer: _Peer) -> float:
        return peer.timer_start + self._grace * peer.interval_s

    def _check_peer(self, peer: _Peer, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        while peer.lives > 0 and now >= self._deadline(peer):
            peer.timer_start = self._deadline(peer)
            peer.lives -= 1
            detail = f"{peer.lives} of {self._max_lives} lives left"
            events.append(
                PeerEvent(
                    PeerEventKind.LIFE_LOST, peer.name, peer.flags, peer.state, peer.state, detail
                )
            )
        if events and peer.lives == 0:
            last_state, peer.state = peer.state, DEAD_STATE
            events.append(self._died_event(peer, last_state, now))
        return events

    @staticmethod
    def _died_event(peer: _Peer, last_state: int, now: float) -> PeerEvent:
        silent = max(0.0, now - peer.last_seen)
        detail = f"silent for {silent:.1f} s, last state {_state_label(last_state)}"
        return PeerEvent(PeerEventKind.DIED, peer.name, peer.flags, last_state, DEAD_STATE, detail)
