"""Core layer: the satellite states and their wire codes (docs/state-machine.md).

Pure data. The high nibble of a code tells where a transitional state comes from, the low nibble
the steady state it goes to; steady states have a low nibble of 0. ``DEAD`` is shown by
controllers for a peer that left for good and is never sent on the wire.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["State"]


class State(IntEnum):
    """Satellite state; the value is the code sent in CHP and ``get_state``."""

    NEW = 0x10
    initializing = 0x12
    INIT = 0x20
    launching = 0x23
    ORBIT = 0x30
    landing = 0x32
    reconfiguring = 0x33
    starting = 0x34
    RUN = 0x40
    stopping = 0x43
    interrupting = 0x0E
    SAFE = 0xE0
    ERROR = 0xF0
    DEAD = 0xFF

    @property
    def is_steady(self) -> bool:
        """True for NEW, INIT, ORBIT, RUN, SAFE, ERROR and the controller-side DEAD."""
        return self is State.DEAD or self.value & 0x0F == 0

    @property
    def target(self) -> State:
        """The steady state a transitional state leads to; a steady state is its own target."""
        if self.is_steady:
            return self
        return State((self.value & 0x0F) << 4)

    @classmethod
    def from_code(cls, code: int) -> State:
        """The state with wire code ``code``; ``ValueError`` for anything else (bool included)."""
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"state code must be an int, got {type(code).__name__}")
        try:
            return cls(code)
        except ValueError:
            raise ValueError(f"unknown state code {code:#04x}") from None

    @classmethod
    def from_name(cls, name: str) -> State:
        """The state called ``name``, case-insensitive (names never collide); else ValueError."""
        if isinstance(name, str):
            for state in cls:
                if state.name.lower() == name.lower():
                    return state
        raise ValueError(f"unknown state name {name!r}")
