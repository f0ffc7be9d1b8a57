"""Protocol layer: msgpack reading helpers shared by the decoders.

Every failure while reading received bytes becomes a :class:`~constellation.errors.DecodeError`
(or a subclass naming a wrong protocol). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgpack

from constellation.errors import DecodeError, InvalidProtocolError, UnexpectedProtocolError
from constellation.protocol.primitives import Protocol

__all__ = [
    "BytesLike",
    "check_keys",
    "check_protocol",
    "check_type",
    "check_uint",
    "decode_map",
    "frames_of",
    "unpack_all",
    "unpack_header",
    "unpack_one",
    "unpack_prefix",
]

_KNOWN_PROTOCOLS: Final = frozenset(p.value for p in Protocol)

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
