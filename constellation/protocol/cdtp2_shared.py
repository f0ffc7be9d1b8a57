"""Protocol layer: zero-copy decoding of CDTP v2 records with large blocks.

Walks the msgpack record array of a CDTP2 frame by hand and returns large bin blocks as
read-only views of the received frame. Anything unusual returns None so that the standard
decoder in :mod:`constellation.protocol.cdtp2` produces the result or the error. Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

from constellation.protocol.common import check_keys

__all__ = ["shared_records"]

_R = TypeVar("_R")
_MakeRecord = Callable[[int, dict[str, Any], list[Any]], _R]

_U8, _U16, _U32, _U64 = (struct.Struct(f">{c}") for c in "BHIQ")
#: msgpack head bytes of fixed-size objects -> their total size.
_FIXED_SIZES = {
    0xC0: 1,
    0xC2: 1,
    0xC3: 1,
    0xCA: 5,
    0xCB: 9,
    0xCC: 2,
    0xCD: 3,
    0xCE: 5,
    0xCF: 9,
    0xD0: 2,
    0xD1: 3,
    0xD2: 5,
    0xD3: 9,
    0xD4: 3,
    0xD5: 4,
    0xD6: 6,
    0xD7: 10,
    0xD8: 18,
}
#: Head bytes of objects with a length field: (length struct, bytes before the data).
_SIZED = {
    0xC4: (_U8, 2),
    0xC5: (_U16, 3),
    0xC6: (_U32, 5),
    0xC7: (_U8, 3),
    0xC8: (_U16, 4),
    0xC9: (_U32, 6),
    0xD9: (_U8, 2),
    0xDA: (_U16, 3),
    0xDB: (_U32, 5),
}
#: Head bytes of arrays and maps with a count field: (count struct, header size, per count).
_COUNTED = {0xDC: (_U16, 3, 1), 0xDD: (_U32, 5, 1), 0xDE: (_U16, 3, 2), 0xDF: (_U32, 5, 2)}
_UINT_HEADS = {0xCC: _U8, 0xCD: _U16, 0xCE: _U32, 0xCF: _U64}


def _skip(data: memoryview, pos: int) -> int:
    """Offset after the msgpack object at ``pos`` (IndexError/KeyError/struct.error if bad)."""
    pending = 1
    while pending:
        pending -= 1
        head = data[pos]
        if head <= 0x7F or head >= 0xE0:  # fixints
            pos += 1
        elif head <= 0x8F:  # fixmap
            pending += 2 * (head & 0x0F)
            pos += 1
        elif head <= 0x9F:  # fixarray
            pending += head & 0x0F
            pos += 1
        elif head <= 0xBF:  # fixstr
            pos += 1 + (head & 0x1F)
        elif head in _FIXED_SIZES:
            pos += _FIXED_SIZES[head]
        elif head in _SIZED:
            length, offset = _SIZED[head]
            pos += offset + length.unpack_from(data, pos + 1)[0]
        else:
            count, offset, per = _COUNTED[head]  # KeyError for 0xC1 (never used)
            pending += per * count.unpack_from(data, pos + 1)[0]
            pos += offset
    if pos > len(data):
        raise IndexError("truncated msgpack object")
    return pos


def _array_header(data: memoryview, pos: int) -> tuple[int, int]:
    """(element count, offset after the header) of the msgpack array at ``pos``."""
    head = data[pos]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F, pos + 1
    count, offset, per = _COUNTED[head]
    if per != 1:
        raise KeyError(head)
    return count.unpack_from(data, pos + 1)[0], pos + offset


def shared_records(
    data: memoryview,
    pos: int,
    min_block: int,
    make_record: Callable[[int, dict[str, Any], list[Any]], _R],
) -> list[_R] | None:
    """Records with large blocks as views of ``data``; None means "use the standard path".

    ``pos`` is the offset of the record array, ``min_block`` the size from which a block is
    shared instead of copied, ``make_record(sequence, tags, blocks)`` builds one record.

    Walks the record array by hand. Anything unusual (a frame of many small records, a
    non-bin block, a signed sequence number, trailing bytes, a malformed frame) returns None,
    so that the standard decoder produces the result or the error.
    """
    try:
        count, pos = _array_header(data, pos)
        if count == 0 or (len(data) - pos) // count < min_block:
            return None
        records: list[_R] = []
        for _ in range(count):
            if data[pos] != 0x93:
                return None
            head = data[pos + 1]
            if head <= 0x7F:
                sequence, pos = head, pos + 2
            elif head in _UINT_HEADS:
                uint = _UINT_HEADS[head]
                sequence, pos = uint.unpack_from(data, pos + 2)[0], pos + 2 + uint.size
            else:
                return None
            start, pos = pos, _skip(data, pos)
            tags = msgpack.unpackb(data[start:pos], raw=False, timestamp=3, strict_map_key=True)
            if type(tags) is not dict:
                return None
            check_keys(tags, "CDTP2 record tags")
            nblocks, pos = _array_header(data, pos)
            blocks: list[Any] = []
            for _ in range(nblocks):
                head = data[pos]
                if head not in (0xC4, 0xC5, 0xC6):
                    return None
                length, offset = _SIZED[head]
                size = length.unpack_from(data, pos + 1)[0]
                start, pos = pos + offset, pos + offset + size
                if pos > len(data):
                    return None
                block = data[start:pos]
                blocks.append(block if size >= min_block else block.tobytes())
            records.append(make_record(sequence, tags, blocks))
    except Exception:  # malformed: the standard decoder names the problem
        return None
    return records if pos == len(data) else None
