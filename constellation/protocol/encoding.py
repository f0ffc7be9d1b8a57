"""Protocol layer: checks of maps that C++ peers must read, and msgpack encoding helpers.

The map rules are those of docs/protocols.md#map-values; every failure is an
:class:`~constellation.errors.EncodeError` naming the offending key. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain, compress, repeat
from operator import is_
from typing import Any, Final

import msgpack

from constellation.errors import EncodeError
from constellation.protocol.primitives import Protocol, to_timestamp

__all__ = [
    "maps_plainly_valid",
    "pack_header",
    "pack_objects",
    "utf8",
    "validate_scalar",
    "validate_wire_map",
]

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
