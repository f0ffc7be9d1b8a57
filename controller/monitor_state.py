"""Controller layer, pure: what the ``Monitor`` remembers of each sender.

The Monitor always follows two metrics of every satellite, whatever the user asked for:
``STATE`` (published on every change and periodically) and ``RUN_ID``. :class:`SenderStates`
turns the ``STATE`` values into one line per change, in arrival order — the first value of a
satellite is its current state on connect — and remembers each sender's run identifier for the
CSV rows.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FOLLOWED", "SenderStates", "StateChange"]

#: Metrics the Monitor subscribes to for itself.
FOLLOWED = ("STATE", "RUN_ID")


@dataclass(frozen=True)
class StateChange:
    """``sender`` went from ``old`` (``None``: first seen) to ``new``."""

    sender: str
    old: str | None
    new: str


class SenderStates:
    """Last state and run id per sender (case-insensitive names)."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._runs: dict[str, str] = {}

    def state(self, sender: str, value: object) -> StateChange | None:
        """A ``STATE`` value arrived: the change it makes, or ``None`` for a repeat."""
        key, new = sender.lower(), str(value)
        old = self._states.get(key)
        if old == new:
            return None
        self._states[key] = new
        return StateChange(sender, old, new)

    def run_id(self, sender: str, value: object | None = None) -> str:
        """Record a ``RUN_ID`` value (if given); the sender's last run id ('' if none)."""
        key = sender.lower()
        if value is not None:
            self._runs[key] = str(value)
        return self._runs.get(key, "")

    def forget(self, sender: str) -> None:
        """``sender`` left: its next state is reported as first seen again."""
        self._states.pop(sender.lower(), None)
