"""Protocol layer: CSCP v1, the satellite control protocol (request/reply), as a pure codec.

A message is two frames (header, verb) or three (with a payload holding exactly one msgpack
object). ``payload=NO_PAYLOAD`` means "no third frame"; ``None`` is a nil payload frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack

from constellation.errors import DecodeError, EncodeError
from constellation.protocol.common import (
    NO_PAYLOAD,
    Protocol,
    check_type,
    check_uint,
    coerce_enum,
    coerce_time,
    frames_of,
    pack_header,
    pack_objects,
    unpack_all,
    unpack_header,
    unpack_one,
    utc_now,
    validate_wire_map,
)

__all__ = ["CSCP1Message", "CSCPType"]


class CSCPType(IntEnum):
    """Type of a CSCP message (first part of the verb frame)."""

    REQUEST = 0
    SUCCESS = 1
    NOTIMPLEMENTED = 2
    INCOMPLETE = 3
    INVALID = 4
    UNKNOWN = 5
    ERROR = 6


@dataclass(frozen=True)
class CSCP1Message:
    """One CSCP v1 request or reply.

    ``time`` accepts a ``msgpack.Timestamp`` or a ``datetime`` (stored as a timestamp).
    A ``dict`` payload is checked like a tag map when encoding (docs/protocols.md#map-values).
    """

    sender: str
    msg_type: CSCPType
    verb: str
    payload: Any = NO_PAYLOAD
    tags: dict[str, Any] = field(default_factory=dict)
    time: msgpack.Timestamp = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        coerce_enum(self, "msg_type", CSCPType)
        coerce_time(self)

    @property
    def has_payload(self) -> bool:
        """True if the message has a payload frame (which may hold nil)."""
        return self.payload is not NO_PAYLOAD

    def encode(self) -> list[bytes]:
        """The frames of this message: header, verb and (if there is a payload) payload."""
        if type(self.msg_type) is not CSCPType:
            raise EncodeError(f"msg_type must be a CSCPType, not {self.msg_type!r}")
        if not isinstance(self.verb, str):
            raise EncodeError(f"verb must be str, not {type(self.verb).__name__}")
        frames = [
            pack_header(Protocol.CSCP1, self.sender, self.time, self.tags),
            pack_objects("verb", int(self.msg_type), self.verb),
        ]
        if self.payload is not NO_PAYLOAD:
            if isinstance(self.payload, dict):
                validate_wire_map(self.payload, "payload")
            frames.append(pack_objects("payload", self.payload))
        return frames

    @classmethod
    def decode(cls, frames: Any) -> CSCP1Message:
        """Decode a received multipart message; raises only the DecodeError family."""
        views = frames_of(frames, (2, 3), "CSCP1 message")
        sender, time, tags = unpack_header(views[0], Protocol.CSCP1, "CSCP1 header")
        raw_type, verb = unpack_all(views[1], 2, "CSCP1 verb")
        check_uint(raw_type, "CSCP1 message type")
        try:
            msg_type = CSCPType(raw_type)
        except ValueError:
            raise DecodeError(f"CSCP1 message type {raw_type} is unknown") from None
        check_type(verb, str, "CSCP1 verb text")
        payload = unpack_one(views[2], "CSCP1 payload") if len(views) == 3 else NO_PAYLOAD
        return cls(sender, msg_type, verb, payload, tags, time)
