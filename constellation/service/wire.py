"""Pure encoding of record slices: the msgpack bytes of docs/data-service.md, built directly.

:func:`pack_records` gives exactly the bytes ``msgpack.packb([{"sequence": ..., "tags": ...,
"blocks": [...], "dtypes": [...]}, ...], use_bin_type=True)`` gives, without building those
maps: block bytes are copied once into the answer, and tags stored as JSON text (SWMR files)
are packed once per distinct text (the same text always packs to the same bytes); what
neighbouring records share (tag text, dtypes, block length) is looked up once.
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
    extend = parts.extend
    tag_bytes: dict[bytes, bytes] = {}
    middles: dict[tuple[bytes, int], bytes] = {}  # (packed tags, block length) -> bytes
    tails: dict[tuple[str, ...], bytes] = {}
    last_json: bytes | None = None
    last_dtypes: list[str] | None = None
    packed_tags = tail = b""
    packed = 0
    for sequence, tags, tags_json, blocks, dtypes in records:
        if tags_json is None:
            packed_tags = pack(tags)
            last_json = None
        elif tags_json is not last_json:  # neighbours share the text object: no lookup
            packed_tags = tag_bytes.get(tags_json) or _remember(tag_bytes, tags_json, pack)
            last_json = tags_json
        if dtypes is not last_dtypes:
            key = tuple(dtypes)
            tail = tails.get(key) or tails.setdefault(key, _DTYPES + pack(list(dtypes)))
            last_dtypes = dtypes
        seq = _FIXINT[sequence] if 0 <= sequence < 128 else pack(sequence)
        if len(blocks) == 1:
            block = blocks[0]
            middle = middles.get((packed_tags, len(block)))
            if middle is None:
                middle = _TAGS + packed_tags + _BLOCKS + b"\x91" + _bin_header(len(block))
                if len(middles) >= _CACHE_LIMIT:
                    middles.clear()
                middles[(packed_tags, len(block))] = middle
            extend((_SEQUENCE, seq, middle, block, tail))
        else:
            extend((_SEQUENCE, seq, _TAGS, packed_tags, _BLOCKS, _array_header(len(blocks))))
            for block in blocks:
                extend((_bin_header(len(block)), block))
            parts.append(tail)
        packed += 1
    if packed != count:
        raise ValueError(f"{packed} records packed, {count} announced")
    return b"".join(parts)


def _remember(cache: dict[bytes, bytes], text: bytes, pack: Any) -> bytes:
    """Pack the tags of JSON ``text`` and keep the bytes (the same text packs the same)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    encoded: bytes = pack(json.loads(text.decode("utf-8")))
    cache[text] = encoded
    return encoded
