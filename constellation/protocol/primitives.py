"""Protocol layer: identifiers, the ``NO_PAYLOAD`` sentinel, timestamps and names.

Pure: the standard library and msgpack only.
"""

from __future__ import annotations

import contextlib
import re
import time as _time
from datetime import datetime, timezone
from enum import Enum, IntEnum
from typing import Final, Literal

import msgpack

__all__ = [
    "NO_PAYLOAD",
    "NoPayload",
    "Protocol",
    "coerce_enum",
    "coerce_time",
    "to_datetime",
    "to_timestamp",
    "utc_now",
    "validate_canonical_name",
    "validate_name",
    "validate_run_id",
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
