"""Pure encoding of record slices: the msgpack bytes of docs/data-service.md, built directly.

:func:`pack_records` gives exactly the bytes ``msgpack.packb([{"sequence": ..., "tags": ...,
"blocks": [...], "dtypes": [...]}, ...], use_bin_type=True)`` gives, without building those
maps: block bytes are copied once into the answer, and tags stored as JSON text (SWMR files)
are packed once per distinct text (the same text always packs to the same bytes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgpack

from constellation.reader.values import RawRecord

__all__ = ["pack_records"]

_PACK = msgpack.Packer(use_bin_type=True).pack  # for the constants below only
_SEQUENCE = b"\x84" + _PACK("sequence")  # a map of four entries, its first key
_TAGS = _PACK("tags")
_BLOCKS = _PACK("blocks")
_DTYPES = _PACK("dtypes")
_CACHE_LIMIT = 4096
_FIXINT = [bytes((n,)) for n in range(128)]


def _array_header(length: int) -> bytes:
    if length < 16:
        return bytes((0x90 | length,))
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _bin_header(length: int) -> bytes:
    if length < 1 << 8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def pack_records(records: Iterable[RawRecord], count: int) -> bytes:
    """The msgpack array of ``count`` record maps (``records`` yields exactly ``count``)."""
    pack = msgpack.Packer(use_bin_type=True).pack  # one per call: requests run in threads
    parts: list[Any] = [_array_header(count)]
    append = parts.append
    tag_bytes: dict[bytes, bytes] = {}
    dtype_bytes: dict[tuple[str, ...], bytes] = {}
    packed = 0
    for sequence, tags, tags_json, blocks, dtypes in records:
        append(_SEQUENCE)
        append(_FIXINT[sequence] if 0 <= sequence < 128 else pack(sequence))
        append(_TAGS)
        if tags_json is None:
            append(pack(tags))
        else:
            encoded = tag_bytes.get(tags_json)
            if encoded is None:
                if len(tag_bytes) >= _CACHE_LIMIT:
                    tag_bytes.clear()
                encoded = tag_bytes[tags_json] = pack(json.loads(tags_json.decode("utf-8")))
            append(encoded)
        append(_BLOCKS)
        append(_array_header(len(blocks)))
        for block in blocks:
            append(_bin_header(len(block)))
            append(block)
        key = tuple(dtypes)
        tail = dtype_bytes.get(key)
        if tail is None:
            tail = dtype_bytes[key] = _DTYPES + pack(list(dtypes))
        append(tail)
        packed += 1
    if packed != count:
        raise ValueError(f"{packed} records packed, {count} announced")
    return b"".join(parts)
