"""Protocol layer: the pieces shared by every Constellation wire codec, in one import.

Pure code (msgpack and the standard library only, never zmq), re-exported from three modules:
``primitives`` (protocol identifiers, the ``NO_PAYLOAD`` sentinel, timestamps, names),
``encoding`` (the check of maps that must be readable by C++ peers, docs/protocols.md#map-values,
and msgpack packing helpers) and ``decoding`` (msgpack helpers that turn every failure while
reading received bytes into :class:`~constellation.errors.DecodeError`).
"""

from __future__ import annotations

from constellation.protocol.decoding import (
    BytesLike,
    check_keys,
    check_protocol,
    check_type,
    check_uint,
    decode_map,
    frames_of,
    unpack_all,
    unpack_header,
    unpack_one,
    unpack_prefix,
)
from constellation.protocol.encoding import (
    maps_plainly_valid,
    pack_header,
    pack_objects,
    utf8,
    validate_scalar,
    validate_wire_map,
)
from constellation.protocol.primitives import (
    NO_PAYLOAD,
    NoPayload,
    Protocol,
    coerce_enum,
    coerce_time,
    to_datetime,
    to_timestamp,
    utc_now,
    validate_canonical_name,
    validate_name,
    validate_run_id,
)

__all__ = [
    "NO_PAYLOAD",
    "BytesLike",
    "NoPayload",
    "Protocol",
    "check_keys",
    "check_protocol",
    "check_type",
    "check_uint",
    "coerce_enum",
    "coerce_time",
    "decode_map",
    "frames_of",
    "maps_plainly_valid",
    "pack_header",
    "pack_objects",
    "to_datetime",
    "to_timestamp",
    "unpack_all",
    "unpack_header",
    "unpack_one",
    "unpack_prefix",
    "utc_now",
    "utf8",
    "validate_canonical_name",
    "validate_name",
    "validate_run_id",
    "validate_scalar",
    "validate_wire_map",
]
