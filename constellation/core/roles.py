"""Autonomy roles: what a peer's failure or departure means for this process.

Layer: ``core`` (pure logic, no I/O, no clock). A sender announces its role as CHP flag bits
(docs/protocols.md#flags-and-roles); a receiver of heartbeats turns a peer event into a
:class:`Reaction` with :func:`reaction` (docs/autonomy.md#roles). The heartbeat interval a
sender announces is :func:`heartbeat_interval` (docs/protocols.md#timing).

``CHPFlags`` is re-exported from :mod:`constellation.protocol.chp1` for convenience.
:class:`PeerEventKind` is defined here, not in ``heartbeat_tracker``, so that this policy module
and the bookkeeping module can both use it without importing each other in a circle.

The reaction is decided from the peer's *role* (``Role.from_flags``), so a peer that sends an
unusual bit pattern is treated like the role those bits map to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from constellation.protocol.chp1 import CHPFlags

__all__ = [
    "DEGRADE",
    "IGNORE",
    "INTERRUPT",
    "LOG_ONLY",
    "CHPFlags",
    "PeerEventKind",
    "Reaction",
    "Role",
    "heartbeat_interval",
    "reaction",
]

#: Shortest interval a sender announces, in seconds (docs/protocols.md#timing).
_MIN_INTERVAL_S = 0.5


class Role(Enum):
    """A sender's autonomy role; the value is the name used in config and ``get_role``."""

    NONE = "NONE"
    TRANSIENT = "TRANSIENT"
    DYNAMIC = "DYNAMIC"
    ESSENTIAL = "ESSENTIAL"

    @property
    def flags(self) -> CHPFlags:
        """The CHP flag bits that announce this role."""
        return _ROLE_FLAGS[self]

    @classmethod
    def from_flags(cls, flags: int) -> Role:
        """Map received flag bits to a role (bits outside the role bits are ignored)."""
        if not flags & CHPFlags.MARK_DEGRADED:
            return cls.NONE
        if not flags & CHPFlags.TRIGGER_INTERRUPT:
            return cls.TRANSIENT
        if not flags & CHPFlags.DENY_DEPARTURE:
            return cls.DYNAMIC
        return cls.ESSENTIAL

    @classmethod
    def parse(cls, text: str) -> Role:
        """Parse a role name case-insensitively; raise ``ValueError`` for anything else."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(role.value for role in cls)
            raise ValueError(f"unknown role {text!r}; expected one of {choices}") from None


_ROLE_FLAGS: dict[Role, CHPFlags] = {
    Role.NONE: CHPFlags(0),
    Role.TRANSIENT: CHPFlags.MARK_DEGRADED,
    Role.DYNAMIC: CHPFlags.MARK_DEGRADED | CHPFlags.TRIGGER_INTERRUPT,
    Role.ESSENTIAL: CHPFlags.MARK_DEGRADED | CHPFlags.TRIGGER_INTERRUPT | CHPFlags.DENY_DEPARTURE,
}


def heartbeat_interval(n_subscribers: int, max_interval_s: float) -> float:
    """Interval in seconds to announce with ``n_subscribers`` listeners (docs/protocols.md#timing).

    Grows with the square root of the subscriber count, never below 0.5 s and never above
    ``max_interval_s`` (which must be positive).
    """
    if not max_interval_s > 0:
        raise ValueError(f"max_interval_s must be positive, got {max_interval_s!r}")
    scaled = _MIN_INTERVAL_S * math.sqrt(max(n_subscribers, 1) - 1) * 3
    return min(max_interval_s, max(_MIN_INTERVAL_S, scaled))


class PeerEventKind(Enum):
    """What happened to a peer, as reported by the heartbeat tracker."""

    JOINED = "joined"
    STATE_CHANGED = "state_changed"
    FAILED = "failed"
    LIFE_LOST = "life_lost"
    DIED = "died"
    DEPARTED = "departed"
    REVIVED = "revived"


@dataclass(frozen=True, slots=True)
class Reaction:
    """What to do about a peer event. ``interrupt`` always comes with ``degrade`` and ``log``."""

    log: bool = False
    degrade: bool = False
    interrupt: bool = False

    def __post_init__(self) -> None:
        if self.interrupt and not self.degrade:
            raise ValueError("an interrupt always marks the run degraded")
        if self.degrade and not self.log:
            raise ValueError("a degraded mark is always logged")


#: The ready-made reactions returned by :func:`reaction`.
IGNORE = Reaction()
LOG_ONLY = Reaction(log=True)
DEGRADE = Reaction(log=True, degrade=True)
INTERRUPT = Reaction(log=True, degrade=True, interrupt=True)

_FAILURES = frozenset({PeerEventKind.FAILED, PeerEventKind.DIED})

# Role → (reaction to a failure, reaction to a departure) while in ORBIT or RUN.
_ROLE_REACTIONS: dict[Role, tuple[Reaction, Reaction]] = {
    Role.NONE: (LOG_ONLY, LOG_ONLY),
    Role.TRANSIENT: (DEGRADE, DEGRADE),
    Role.DYNAMIC: (INTERRUPT, DEGRADE),
    Role.ESSENTIAL: (INTERRUPT, INTERRUPT),
}


def reaction(peer_flags: int, event: PeerEventKind, own_state_is_orbit_or_run: bool) -> Reaction:
    """Decide the reaction to ``event`` of a peer announcing ``peer_flags``.

    The rules are those of docs/autonomy.md#roles.

    Failures are FAILED (peer reached ERROR or SAFE) and DIED (heartbeats lost); a departure is
    DEPARTED. Other events need no reaction. Outside ORBIT and RUN every issue is only logged.
    """
    if event not in _FAILURES and event is not PeerEventKind.DEPARTED:
        return IGNORE
    if not own_state_is_orbit_or_run:
        return LOG_ONLY
    on_failure, on_departure = _ROLE_REACTIONS[Role.from_flags(peer_flags)]
    return on_failure if event in _FAILURES else on_departure
