"""Protocol layer: CHP v1, the heartbeat protocol, as a pure codec.

Frame 1 holds six msgpack objects (identifier, sender, timestamp, state, flags, interval in ms);
the optional frame 2 is the status text as raw UTF-8. The header timestamp stays a
``msgpack.Timestamp`` so that a decoded heartbeat re-encodes byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

import msgpack

from constellation.errors import DecodeError, EncodeError
from constellation.protocol.common import (
    Protocol,
    check_type,
    check_uint,
    coerce_time,
    frames_of,
    pack_objects,
    unpack_prefix,
    utc_now,
    utf8,
)

__all__ = ["CHP1Message", "CHPFlags"]

_MAX_INTERVAL_MS = 0xFFFF  # C++ receivers read the interval as uint16


class CHPFlags(IntFlag):
    """Flags of a heartbeat; the three low bits encode the sender's role."""

    NONE = 0x00
    DENY_DEPARTURE = 0x01
    TRIGGER_INTERRUPT = 0x02
    MARK_DEGRADED = 0x04
    IS_EXTRASYSTOLE = 0x80


@dataclass(frozen=True)
class CHP1Message:
    """One heartbeat. ``status`` is the optional second frame (``None``: no second frame)."""

    sender: str
    state: int
    flags: int
    interval_ms: int
    status: str | None = None
    time: msgpack.Timestamp = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        coerce_time(self)

    @property
    def is_extrasystole(self) -> bool:
        """True for an out-of-schedule heartbeat sent on a state change."""
        return bool(self.flags & CHPFlags.IS_EXTRASYSTOLE)

    def encode(self) -> list[bytes]:
        """Frame 1 and, if ``status`` is not None, the raw UTF-8 status frame."""
        if not isinstance(self.sender, str):
            raise EncodeError(f"sender must be str, not {type(self.sender).__name__}")
        for name, value, maximum in (
            ("state", self.state, 0xFF),
            ("flags", self.flags, 0xFF),
            ("interval_ms", self.interval_ms, _MAX_INTERVAL_MS),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
                raise EncodeError(f"{name} must be an int in 0..{maximum}, not {value!r}")
        if self.status is not None and not isinstance(self.status, str):
            raise EncodeError(f"status must be str or None, not {type(self.status).__name__}")
        if not isinstance(self.time, msgpack.Timestamp):
            raise EncodeError(f"time must be a msgpack.Timestamp, not {type(self.time).__name__}")
        frame = pack_objects(
            "CHP1 message",
            Protocol.CHP1.value,
            self.sender,
            self.time,
            int(self.state),
            int(self.flags),
            int(self.interval_ms),
        )
        if self.status is None:
            return [frame]
        return [frame, utf8(self.status, "status")]

    @classmethod
    def decode(cls, frames: Any) -> CHP1Message:
        """Decode a received heartbeat; raises only the DecodeError family."""
        views = frames_of(frames, (1, 2), "CHP1 message")
        head = views[0]
        objects, end = unpack_prefix(head, 6, Protocol.CHP1, "CHP1 message", timestamp=0)
        if end != len(head):
            raise DecodeError(f"CHP1 message: {len(head) - end} unexpected bytes after 6 objects")
        _, sender, time, state, flags, interval = objects
        check_type(sender, str, "CHP1 sender")
        check_type(time, msgpack.Timestamp, "CHP1 timestamp")
        check_uint(state, "CHP1 state", 0xFF)
        check_uint(flags, "CHP1 flags", 0xFF)
        check_uint(interval, "CHP1 interval", _MAX_INTERVAL_MS)
        status = None
        if len(views) == 2:
            try:
                status = str(views[1], "utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"CHP1 status is not valid UTF-8 ({exc})") from exc
        return cls(sender, state, CHPFlags(flags), interval, status, time)
