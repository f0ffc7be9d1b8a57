"""Protocol layer: CHIRP v1 discovery beacons (42-byte UDP datagrams), as a pure codec.

Layout: ``CHIRP`` + version byte 1, message type, 16-byte group id, 16-byte host id, service id,
big-endian port. Ids are the MD5 digests of the lower-cased group and host names.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from constellation.errors import DecodeError, EncodeError, InvalidProtocolError
from constellation.protocol.common import coerce_enum

__all__ = [
    "BEACON_SIZE",
    "CHIRP_MULTICAST_ADDRESS",
    "CHIRP_PORT",
    "ChirpBeacon",
    "ChirpType",
    "ServiceId",
    "name_id",
]

#: UDP port and IPv4 multicast group of CHIRP.
CHIRP_PORT: Final = 7123
CHIRP_MULTICAST_ADDRESS: Final = "239.192.7.123"
#: Size of every beacon in bytes.
BEACON_SIZE: Final = 42

_HEADER: Final = b"CHIRP\x01"
_LAYOUT: Final = struct.Struct(">6sB16s16sBH")


class ChirpType(IntEnum):
    """Type of a beacon."""

    REQUEST = 1
    OFFER = 2
    DEPART = 3


class ServiceId(IntEnum):
    """Service a beacon is about (which protocol listens on the port)."""

    CONTROL = 1
    HEARTBEAT = 2
    MONITORING = 3
    DATA = 4


def name_id(name: str) -> bytes:
    """The 16-byte id of a group or host name: MD5 of the lower-cased UTF-8 name."""
    return hashlib.md5(name.lower().encode("utf-8"), usedforsecurity=False).digest()


@dataclass(frozen=True)
class ChirpBeacon:
    """One CHIRP beacon; ``group_id`` and ``host_id`` are raw 16-byte digests (:func:`name_id`)."""

    msg_type: ChirpType
    group_id: bytes
    host_id: bytes
    service: ServiceId
    port: int

    def __post_init__(self) -> None:
        coerce_enum(self, "msg_type", ChirpType)
        coerce_enum(self, "service", ServiceId)

    @classmethod
    def for_names(
        cls, msg_type: ChirpType, group: str, host: str, service: ServiceId, port: int = 0
    ) -> ChirpBeacon:
        """A beacon for a group and host given by name."""
        return cls(msg_type, name_id(group), name_id(host), service, port)

    def encode(self) -> bytes:
        """The 42-byte datagram."""
        if type(self.msg_type) is not ChirpType:
            raise EncodeError(f"msg_type must be a ChirpType, not {self.msg_type!r}")
        if type(self.service) is not ServiceId:
            raise EncodeError(f"service must be a ServiceId, not {self.service!r}")
        for name in ("group_id", "host_id"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 16:
                raise EncodeError(f"{name} must be 16 bytes, not {value!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 0xFFFF:
            raise EncodeError(f"port must be an int in 0..65535, not {self.port!r}")
        return _LAYOUT.pack(
            _HEADER, self.msg_type, self.group_id, self.host_id, self.service, self.port
        )

    @classmethod
    def decode(cls, data: Any) -> ChirpBeacon:
        """Decode a received datagram; raises only the DecodeError family."""
        try:
            raw = memoryview(data).tobytes()
        except TypeError as exc:
            raise DecodeError(f"CHIRP beacon: expected bytes, got {type(data).__name__}") from exc
        if len(raw) != BEACON_SIZE:
            raise DecodeError(f"CHIRP beacon: {len(raw)} bytes instead of {BEACON_SIZE}")
        header, msg_type, group_id, host_id, service, port = _LAYOUT.unpack(raw)
        if header != _HEADER:
            raise InvalidProtocolError(f"CHIRP beacon: unknown header {header!r}")
        try:
            return cls(ChirpType(msg_type), group_id, host_id, ServiceId(service), port)
        except ValueError:
            raise DecodeError(
                f"CHIRP beacon: invalid message type {msg_type} or service id {service}"
            ) from None
