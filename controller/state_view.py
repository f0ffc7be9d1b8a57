"""Controller layer, pure: what a controller believes about the states of its satellites.

:class:`StateView` is fed events with the time they happened — a command service found or
withdrawn, a heartbeat state, a heartbeat loss, a ``get_state`` answer, an accepted transition
— and returns the :class:`Change` records that callbacks should hear of, in order. It does no
I/O and takes no lock: the controller serialises calls.

Rules:
- Heartbeats are the source of truth; a ``get_state`` answer fills the view only while no
  heartbeat of that satellite arrived (or it shows ``DEAD``), and only if the view did not
  change since the question was asked (``version``), so an answer that overtook a heartbeat
  never makes the view step back.
- An accepted transition command shows its transitional state at once, unless the view moved
  since the command was sent.
- ``DEAD`` (departed or silent) keeps the last live state and status, for display; beats of a
  departed satellite read after its departure do not bring it back.
- Satellites are known once their command service was found; changes of others are silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from constellation.core.states import State

__all__ = ["Change", "SatelliteView", "StateView", "global_state", "state_summary"]


@dataclass(frozen=True)
class Change:
    """Something callbacks hear of: ``kind`` is ``state``, ``join`` or ``leave``."""

    kind: str
    name: str
    old: str = ""
    new: str = ""


@dataclass
class SatelliteView:
    """Everything known about one satellite."""

    name: str
    state: str = "?"
    last_state: str = "?"  # the last state other than DEAD
    status: str = ""
    present: bool = False  # its command service is known now
    known: bool = False  # its command service was found at least once
    heartbeat_seen: bool = False
    version: int = 0
    changed_at: float = 0.0
    history: list[tuple[float, str]] = field(default_factory=list)


#: Order in which a mixed group's state is summarised: trouble first.
_ALARM = ("ERROR", "SAFE", "DEAD")


def _code(state: str) -> int:
    return State[state].value if state in State.__members__ else 0


def global_state(states: Iterable[str]) -> str:
    """The common state, or for a mixed group ``~`` + ERROR/SAFE/DEAD if any, else the lowest."""
    states = list(states)
    if not states:
        return "NONE"
    if len(set(states)) == 1:
        return states[0]
    for alarm in _ALARM:
        if alarm in states:
            return f"~{alarm}"
    return f"~{min(states, key=_code)}"


def state_summary(states: Iterable[str]) -> str:
    """E.g. ``ORBIT`` or ``INIT, 1 ERROR, 2 DEAD``: the lowest healthy state, then the alarms."""
    states = list(states)
    if not states:
        return "NONE"
    healthy = [s for s in states if s not in _ALARM]
    parts = [min(healthy, key=_code)] if healthy else []
    if len(set(healthy)) > 1:
        parts[0] = f"~{parts[0]}"
    parts += [f"{states.count(a)} {a}" for a in _ALARM if a in states]
    if not healthy and len(set(states)) == 1:
        return states[0]
    return ", ".join(parts)


class StateView:
    """The satellites' states as the controller believes them; feed it events."""

    _HISTORY = 20

    def __init__(self) -> None:
        self._sats: dict[str, SatelliteView] = {}

    # --- queries ----------------------------------------------------------------------------
    def get(self, name: str) -> SatelliteView | None:
        return self._sats.get(name.lower())

    def canonical(self, name: str) -> str:
        view = self._sats.get(name.lower())
        return name if view is None else view.name

    def version(self, name: str) -> int:
        view = self._sats.get(name.lower())
        return 0 if view is None else view.version

    def states(self) -> dict[str, str]:
        """Known satellites (present or not) -> state."""
        return {v.name: v.state for v in self._sats.values() if v.known}

    def statuses(self) -> dict[str, str]:
        return {v.name: v.status for v in self._sats.values() if v.status}

    def present_states(self) -> list[str]:
        return [v.state for v in self._sats.values() if v.known and v.present]

    def global_state(self) -> str:
        return global_state(self.present_states())

    def summary(self) -> str:
        return state_summary(self.present_states())

    # --- events -----------------------------------------------------------------------------
    def joined(self, name: str, now: float) -> list[Change]:
        """The command service of ``name`` was found (first time, or again)."""
        view = self._view(name)
        view.name = name  # the command service's spelling is canonical
        first = not view.known
        view.present = view.known = True
        changes = [Change("join", name)]
        if first and view.state != "?":
            changes.append(Change("state", name, "?", view.state))  # heartbeats were faster
        return changes

    def left(self, name: str, now: float) -> list[Change]:
        """The command service of ``name`` was withdrawn: it shows DEAD."""
        view = self._sats.get(name.lower())
        if view is None or not view.present:
            return []
        view.present = False
        changes = self._set(view, "DEAD", now)
        return [*changes, Change("leave", view.name)]

    def heartbeat(
        self, name: str, state: str, now: float, status: str | None = None
    ) -> list[Change]:
        """A heartbeat (or a revived peer) reported ``state``.

        Ignored once the satellite left (its last beats may be read after its departure);
        it counts again when its command service is found again.
        """
        view = self._view(name)
        if view.known and not view.present:
            return []
        view.heartbeat_seen = True
        if status is not None:
            view.status = status
        return self._set(view, state, now)

    def status(self, name: str, status: str) -> None:
        """A new status text of ``name`` (heartbeats carry every change)."""
        self._view(name).status = status

    def lost(self, name: str, now: float) -> list[Change]:
        """Heartbeats of ``name`` stopped: it shows DEAD (it may come back)."""
        return self._set(self._view(name), "DEAD", now)

    def answered(
        self, name: str, state: str, version: int, now: float, *, rejoined: bool = False
    ) -> list[Change]:
        """A ``get_state`` answer asked at ``version``; fills gaps only (see the module rules)."""
        view = self._sats.get(name.lower())
        if view is None or view.version != version:
            return []
        if view.heartbeat_seen and view.state != "DEAD":
            return []
        if view.state == "DEAD" and not (rejoined and view.present):
            return []
        return self._set(view, state, now)

    def accepted(self, name: str, transitional: str, before: str, now: float) -> list[Change]:
        """A transition command was accepted while the view showed ``before``."""
        view = self._sats.get(name.lower())
        if view is None or view.state != before:
            return []  # heartbeats already told something newer
        return self._set(view, transitional, now)

    def confirm(self, name: str, state: str, now: float) -> list[Change]:
        """Set ``state`` from an answer that heartbeats did not confirm in time."""
        view = self._sats.get(name.lower())
        return [] if view is None else self._set(view, state, now)

    # --- internals ----------------------------------------------------------------------------
    def _view(self, name: str) -> SatelliteView:
        view = self._sats.get(name.lower())
        if view is None:
            view = self._sats[name.lower()] = SatelliteView(name)
        return view

    def _set(self, view: SatelliteView, state: str, now: float) -> list[Change]:
        if view.state == state:
            return []
        old, view.state = view.state, state
        if state != "DEAD":
            view.last_state = state
        view.version += 1
        view.changed_at = now
        view.history.append((now, state))
        del view.history[: -self._HISTORY]
        return [Change("state", view.name, old, state)] if view.known else []
