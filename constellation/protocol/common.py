"""Protocol layer: the pieces shared by every Constellation wire codec.

Pure code (msgpack and the standard library only, never zmq): the protocol identifiers, the
``NO_PAYLOAD`` sentinel, timestamp helpers, name validation, the check of maps that must be
readable by C++ peers (docs/protocols.md#map-values), and small msgpack helpers that turn every
failure while reading received bytes into :class:`~constellation.errors.DecodeError`.
"""

from __future__ import annotations

import contextlib
import re
import time as _time
from collections.abc import Sequence
from datetime import datetime, timezone
from enum import Enum, IntEnum
from itertools import chain, compress, repeat
from operator import is_
from typing import Any, Final, Literal

import msgpack

from constellation.errors import (
    DecodeError,
    EncodeError,
    InvalidProtocolError,
    UnexpectedProtocolError,
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


class _NoPayloadType(Enum):
    NO_PAYLOAD = "NO_PAYLOAD"

    def __repr__(self) -> str:
        return "NO_PAYLOAD"


#: Sentinel for "the message has no payload frame" (a nil payload is ``None``).
NO_PAYLOAD: Final = _NoPayloadType.NO_PAYLOAD
#: The type of :data:`NO_PAYLOAD`, for annotations (``payload: Any | NoPayload``).
NoPayload = Literal[_NoPayloadType.NO_PAYLOAD]


class Protocol(str, Enum):
    """Protocol identifier strings: the name followed by one raw version byte."""

    CSCP1 = "CSCP\x01"
    CMDP1 = "CMDP\x01"
    CHP1 = "CHP\x01"
    CDTP2 = "CDTP\x02"
    CDTP1 = "CDTP\x01"


_KNOWN_PROTOCOLS: Final = frozenset(p.value for p in Protocol)

# --- timestamps ----------------------------------------------------------------------------------


def utc_now() -> msgpack.Timestamp:
    """The current time as a nanosecond msgpack timestamp (what goes into message headers)."""
    return msgpack.Timestamp.from_unix_nano(_time.time_ns())


def to_datetime(ts: msgpack.Timestamp | datetime) -> datetime:
    """An aware UTC datetime (microsecond resolution) for a timestamp or a datetime.

    Naive datetimes are taken as local time.
    """
    if isinstance(ts, datetime):
        aware = ts if ts.tzinfo is not None else ts.astimezone()
        return aware.astimezone(timezone.utc)
    if isinstance(ts, msgpack.Timestamp):
        result: datetime = ts.to_datetime()
        return result
    raise TypeError(f"expected msgpack.Timestamp or datetime, got {type(ts).__name__}")


def to_timestamp(value: msgpack.Timestamp | datetime) -> msgpack.Timestamp:
    """A msgpack timestamp for a timestamp or a datetime (naive datetimes are local time)."""
    if isinstance(value, msgpack.Timestamp):
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.astimezone()
        return msgpack.Timestamp.from_datetime(aware)
    raise TypeError(f"expected msgpack.Timestamp or datetime, got {type(value).__name__}")


def coerce_time(obj: object) -> None:
    """Frozen-dataclass helper: store a ``datetime`` in field ``time`` as a msgpack timestamp.

    Other types are kept so that ``encode()`` reports them as :class:`EncodeError`.
    """
    value = getattr(obj, "time")  # noqa: B009 - shared by several dataclasses
    if isinstance(value, datetime):
        object.__setattr__(obj, "time", to_timestamp(value))


def coerce_enum(obj: object, name: str, enum: type[IntEnum]) -> None:
    """Frozen-dataclass helper: turn a valid int field into its enum member (else keep it).

    Invalid values are kept so that ``encode()`` reports them as :class:`EncodeError`.
    """
    value = getattr(obj, name)
    if type(value) is not enum and isinstance(value, int):
        with contextlib.suppress(ValueError):
            object.__setattr__(obj, name, enum(value))


# --- names ---------------------------------------------------------------------------------------

# ASCII \w only: C++ peers match names with std::regex, which knows no Unicode word characters.
_NAME_RE: Final = re.compile(r"\w+", re.ASCII)
_RUN_ID_RE: Final = re.compile(r"[\w-]+", re.ASCII)


def validate_name(name: str) -> str:
    """Check a satellite type or name (``^\\w+$``); return it or raise ``ValueError``."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid name {name!r}: use letters, digits and underscores only")
    return name


def validate_canonical_name(name: str) -> tuple[str, str]:
    """Split a canonical name ``Type.Name`` into its two checked parts or raise ``ValueError``."""
    if not isinstance(name, str) or name.count(".") != 1:
        raise ValueError(f"invalid canonical name {name!r}: expected 'Type.Name'")
    sat_type, sat_name = name.split(".")
    try:
        return validate_name(sat_type), validate_name(sat_name)
    except ValueError as exc:
        raise ValueError(f"invalid canonical name {name!r}: {exc}") from None


def validate_run_id(run_id: str) -> str:
    """Check a run identifier (``^[\\w-]+$``); return it or raise ``ValueError``."""
    if not isinstance(run_id, str) or _RUN_ID_RE.fullmatch(run_id) is None:
        raise ValueError(
            f"invalid run identifier {run_id!r}: use letters, digits, '_' and '-' only"
        )
    return run_id


# --- encoding ------------------------------------------------------------------------------------

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_MAX_DEPTH: Final = 32

# Exact types that need no further look (int needs its range checked).
_PLAIN_TYPES: Final = frozenset({type(None), bool, float, str, datetime, msgpack.Timestamp})
_PLAIN_OR_INT: Final = _PLAIN_TYPES | {int}
_KIND_BY_TYPE: Final[dict[type, str]] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    datetime: "timestamp",
    msgpack.Timestamp: "timestamp",
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _scalar_kind(value: object) -> str | None:
    """The C++ scalar kind of a value (bool, int, float, str, timestamp) or None."""
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is None:  # subclasses, e.g. IntEnum or str Enum members
        for base in (bool, int, float, str, datetime):
            if isinstance(value, base):
                kind = _KIND_BY_TYPE[base]
                break
    return kind


def _check_int(value: int, path: str) -> None:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise EncodeError(f"{path or 'value'}: integer {value} does not fit a signed 64-bit int")


def validate_scalar(value: object, path: str = "value") -> None:
    """Check that ``value`` is nil, bool, int64, float, str or a timestamp (metric values)."""
    if value is None:
        return
    kind = _scalar_kind(value)
    if kind is None:
        raise EncodeError(
            f"{path}: {type(value).__name__} is not a scalar (nil/bool/int/float/str/timestamp)"
        )
    if kind == "int" and isinstance(value, int):
        _check_int(value, path)


def _check_array(values: Sequence[Any], path: str) -> None:
    first: str | None = None
    for index, element in enumerate(values):
        kind = _scalar_kind(element)
        if kind is None:
            raise EncodeError(
                f"{path}[{index}]: array elements must be bool, int, float, str or timestamp, "
                f"not {type(element).__name__}"
            )
        if kind == "int":
            _check_int(element, f"{path}[{index}]")
        if first is None:
            first = kind
        elif kind != first:
            raise EncodeError(f"{path}[{index}]: mixed array element types ({first} and {kind})")


def _check_map(mapping: dict[Any, Any], path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise EncodeError(f"{path}: maps nested deeper than {_MAX_DEPTH} levels")
    for key, value in mapping.items():
        if type(key) is not str and not isinstance(key, str):
            raise EncodeError(
                f"{_join(path, repr(key))}: map keys must be str, not {type(key).__name__}"
            )
        vtype = type(value)
        if vtype in _PLAIN_TYPES:
            continue
        if vtype is int:
            _check_int(value, _join(path, key))
        elif isinstance(value, dict):
            _check_map(value, _join(path, key), depth + 1)
        elif isinstance(value, (list, tuple)) and not isinstance(value, msgpack.ExtType):
            _check_array(value, _join(path, key))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"{_join(path, key)}: binary values are not allowed inside maps")
        else:
            validate_scalar(value, _join(path, key))


def validate_wire_map(mapping: object, path: str = "") -> None:
    """Check that a tag or configuration map can travel to every peer.

    The rules are those of docs/protocols.md#map-values.

    Allowed: str keys; values nil, bool, int (signed 64 bit), float, str, timestamp (``datetime``
    or ``msgpack.Timestamp``), homogeneous arrays of one of bool/int/float/str/timestamp, and nested
    maps following the same rules. Raises :class:`EncodeError` naming the offending key path
    (``path`` is prepended, e.g. ``"tags"``).
    """
    if not isinstance(mapping, dict):
        raise EncodeError(f"{path or 'map'}: expected a dict, got {type(mapping).__name__}")
    _check_map(mapping, path, 0)


def maps_plainly_valid(maps: Sequence[dict[Any, Any]]) -> bool:
    """Quick column-wise check of flat maps (loops in C), for the CDTP hot path.

    True: every map has str keys and plain scalar values (so it passes
    :func:`validate_wire_map`). False: look at each map with :func:`validate_wire_map`.
    """
    if set(map(type, chain.from_iterable(maps))) != {str}:
        return False
    values = list(chain.from_iterable(map(dict.values, maps)))
    kinds = list(map(type, values))
    if not set(kinds) <= _PLAIN_OR_INT:
        return False
    ints = list(compress(values, map(is_, kinds, repeat(int))))
    return not ints or (min(ints) >= _INT64_MIN and max(ints) <= _INT64_MAX)


def _pack_default(obj: object) -> object:
    """msgpack fallback: naive datetimes (local time) and datetime subclasses become timestamps."""
    if isinstance(obj, datetime):
        return to_timestamp(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__!r} object")


def pack_objects(what: str, *objects: object) -> bytes:
    """Concatenated msgpack encodings (bin type, datetimes as ext -1); EncodeError on failure."""
    pk = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default, autoreset=False)
    try:
        for obj in objects:
            pk.pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"{what}: cannot encode ({exc})") from exc
    data: bytes = pk.bytes()
    return data


def utf8(text: str, what: str) -> bytes:
    """Raw UTF-8 bytes of a text frame (topics, log messages, status); EncodeError if impossible."""
    try:
        return text.encode("utf-8")
    except (AttributeError, UnicodeEncodeError) as exc:
        raise EncodeError(f"{what}: cannot encode as UTF-8 ({exc})") from exc


def pack_header(
    protocol: Protocol, sender: str, time: msgpack.Timestamp, tags: dict[str, Any]
) -> bytes:
    """Encode a CSCP1/CMDP1 header frame: identifier, sender, timestamp, tags (validated)."""
    if not isinstance(sender, str):
        raise EncodeError(f"sender must be str, not {type(sender).__name__}")
    if not isinstance(time, msgpack.Timestamp):
        raise EncodeError(f"time must be a msgpack.Timestamp, not {type(time).__name__}")
    validate_wire_map(tags, "tags")
    return pack_objects("header", protocol.value, sender, time, tags)


# --- decoding ------------------------------------------------------------------------------------

#: Data that was received: bytes, bytearray, memoryview, zmq.Frame (anything with a buffer).
BytesLike = Any


def _view(data: object) -> memoryview:
    """A flat byte view of received data; DecodeError for non-buffers."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"expected bytes, got {type(data).__name__}") from exc
    return view


def frames_of(frames: object, counts: Sequence[int], what: str) -> list[memoryview]:
    """Check the frame list of a multipart message and return byte views of its frames."""
    if isinstance(frames, (str, bytes, bytearray, memoryview)) or not isinstance(frames, Sequence):
        raise DecodeError(f"{what}: expected a sequence of frames, got {type(frames).__name__}")
    if len(frames) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise DecodeError(f"{what}: expected {expected} frames, got {len(frames)}")
    return [_view(frame) for frame in frames]


def check_keys(obj: object, what: str) -> None:
    """Raise DecodeError if a map anywhere inside a decoded object has a non-str key.

    msgpack lets bin keys through; the wire rules allow str keys only. Iterative, so that
    nesting as deep as msgpack accepts cannot exhaust the Python stack.
    """
    if type(obj) is not dict and type(obj) is not list:
        return
    pending: list[Any] = [obj]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            for key, value in item.items():
                if type(key) is not str:
                    raise DecodeError(f"{what}: map key {key!r} is not a str")
                if type(value) is dict or type(value) is list:
                    pending.append(value)
        else:
            pending.extend(value for value in item if type(value) is dict or type(value) is list)


def unpack_one(data: BytesLike, what: str, timestamp: int = 3) -> Any:
    """Decode exactly one msgpack object filling ``data``; maps must have str keys."""
    try:
        obj = msgpack.unpackb(data, raw=False, timestamp=timestamp, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types; all mean "bad bytes"
        raise DecodeError(f"{what}: invalid msgpack data ({exc})") from exc
    check_keys(obj, what)
    return obj


def decode_map(data: BytesLike, what: str) -> dict[str, Any]:
    """Decode exactly one msgpack map with str keys (timestamps become datetimes)."""
    obj = unpack_one(data, what)
    if type(obj) is not dict:
        raise DecodeError(f"{what}: expected a map, got {type(obj).__name__}")
    result: dict[str, Any] = obj
    return result


_PREFIX_WINDOW: Final = 4096


def _unpacker(data: memoryview, timestamp: int, limit: int = 0) -> msgpack.Unpacker:
    """An unpacker fed with ``data``; size limits follow ``limit`` (default: ``len(data)``)."""
    up = msgpack.Unpacker(
        raw=False,
        timestamp=timestamp,
        strict_map_key=True,
        max_buffer_size=max(limit, len(data), 1),
    )
    up.feed(data)
    return up


def unpack_all(data: memoryview, count: int, what: str, timestamp: int = 3) -> list[Any]:
    """Decode exactly ``count`` concatenated msgpack objects filling ``data``."""
    try:
        up = _unpacker(data, timestamp)
        objects = [up.unpack() for _ in range(count)]
        end = up.tell()
    except Exception as exc:
        raise DecodeError(f"{what}: invalid msgpack data ({exc})") from exc
    if end != len(data):
        raise DecodeError(f"{what}: {len(data) - end} unexpected bytes after {count} objects")
    for obj in objects:
        check_keys(obj, what)
    return objects


def check_protocol(value: object, expected: Protocol) -> None:
    """Check a decoded protocol identifier against the one expected on this socket."""
    if type(value) is not str:
        raise DecodeError(f"protocol identifier is not a str but {type(value).__name__}")
    if value != expected.value:
        if value in _KNOWN_PROTOCOLS:
            raise UnexpectedProtocolError(
                f"received {Protocol(value).name} where {expected.name} was expected"
            )
        raise InvalidProtocolError(f"unknown protocol identifier {value!r}")


def check_type(value: Any, kind: type, what: str) -> None:
    """Raise DecodeError unless ``type(value) is kind`` (exact, like the reference decoders)."""
    if type(value) is not kind:
        raise DecodeError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")


def check_uint(value: Any, what: str, maximum: int | None = None) -> int:
    """Return value if it is a non-negative int (at most ``maximum``), else raise DecodeError."""
    if type(value) is not int or value < 0 or (maximum is not None and value > maximum):
        limit = f" ≤ {maximum}" if maximum is not None else ""
        raise DecodeError(f"{what}: expected an unsigned integer{limit}, got {value!r}")
    return value


def unpack_prefix(
    data: memoryview, count: int, expected: Protocol, what: str, timestamp: int
) -> tuple[list[Any], int]:
    """Decode the first ``count`` objects of a frame whose first object is the protocol id.

    Returns the objects and the offset where the rest of the frame starts. The protocol id is
    checked before anything else is read, so a foreign message gets the protocol error. Only a
    small window at the start of a large frame is copied into the unpacker.
    """
    window = data if len(data) <= _PREFIX_WINDOW else data[:_PREFIX_WINDOW]
    try:
        up = _unpacker(window, timestamp, limit=len(data))
        ident = up.unpack()
    except Exception as exc:
        raise DecodeError(f"{what}: invalid msgpack data ({exc})") from exc
    check_protocol(ident, expected)
    try:
        try:
            objects = [ident] + [up.unpack() for _ in range(count - 1)]
        except msgpack.OutOfData:
            if window is data:
                raise
            up = _unpacker(data, timestamp)  # long header: read it from the whole frame
            objects = [up.unpack() for _ in range(count)]
        end = up.tell()
    except Exception as exc:
        raise DecodeError(f"{what}: invalid msgpack data ({exc})") from exc
    return objects, end


def unpack_header(
    data: memoryview, expected: Protocol, what: str
) -> tuple[str, msgpack.Timestamp, dict[str, Any]]:
    """Decode a CSCP1/CMDP1 header frame into (sender, timestamp, tags).

    The header timestamp stays a ``msgpack.Timestamp`` (so it re-encodes byte for byte);
    timestamps inside the tags become aware UTC datetimes.
    """
    (_, sender, time), end = unpack_prefix(data, 3, expected, what, timestamp=0)
    check_type(sender, str, f"{what} sender")
    check_type(time, msgpack.Timestamp, f"{what} timestamp")
    tags = decode_map(data[end:], f"{what} tags")
    return sender, time, tags
