"""H5DataWriter file layer: the ``meta`` bytes of the SWMR layout (pure, no HDF5 calls).

Each record's entry is its tags as compact UTF-8 JSON plus ``block_lengths`` and ``sequence``
(reserved names that override tags of the same name; docs/file-format.md). The tag JSON is
encoded once while consecutive records repeat their tags (:class:`MetaEncoder`), and a range
of consecutive sequence numbers is formatted without a per-record loop (:func:`range_meta`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from satellites.h5datawriter.attrs import same_tags, to_json_bytes

__all__ = ["FORMAT_INT", "MetaEncoder", "encode_meta", "range_meta"]

_RESERVED = ("block_lengths", "sequence")
#: ``b"%d" % n`` as a function (for ``map``).
FORMAT_INT = b"%d".__mod__


def encode_meta(tags: Mapping[str, Any], lengths: list[int], sequence: int) -> bytes:
    """Compact UTF-8 JSON of a record's tags plus ``block_lengths`` and ``sequence``."""
    prefix = _tags_prefix(tags)
    if prefix is None:
        return to_json_bytes({**tags, "block_lengths": lengths, "sequence": sequence})
    return prefix + _meta_tail(lengths, sequence)


def _meta_tail(lengths: list[int], sequence: int) -> bytes:
    joined = ",".join(map(str, lengths)).encode()
    return b'"block_lengths":[%s],"sequence":%d}' % (joined, sequence)


def _tags_prefix(tags: Mapping[str, Any]) -> bytes | None:
    """The tags' JSON without its closing brace (None if they use a reserved key)."""
    if not tags:
        return b"{"
    if any(key in tags for key in _RESERVED):
        return None
    return to_json_bytes(tags)[:-1] + b","


class MetaEncoder:
    """:func:`encode_meta` that reuses the tag JSON while consecutive records repeat their tags."""

    def __init__(self) -> None:
        self._tags: dict[str, Any] | None = None
        self._prefix: bytes | None = None

    def prefix_for(self, tags: Mapping[str, Any]) -> bytes | None:
        """The JSON of ``tags`` without its closing brace (None if they use a reserved key)."""
        if self._tags is None or not same_tags(self._tags, tags):
            self._tags = dict(tags)
            self._prefix = _tags_prefix(tags)
        return self._prefix

    def __call__(self, tags: Mapping[str, Any], lengths: list[int], sequence: int) -> bytes:
        prefix = self.prefix_for(tags)
        if prefix is None:
            return encode_meta(tags, lengths, sequence)
        return prefix + _meta_tail(lengths, sequence)


_DIGITS_MAX = 19  # decimal digits numpy's uint64 arithmetic below handles safely


def range_meta(head: bytes, first: int, count: int) -> tuple[bytes, np.ndarray]:
    """``head + str(sequence) + "}"`` for ``first .. first + count - 1``, and the lengths.

    When every number has the same count of digits (the usual case), the digits are computed
    with numpy, one row per record; otherwise the numbers are formatted one by one.
    """
    width = len(str(first))
    if len(str(first + count - 1)) != width or width > _DIGITS_MAX:
        digits = list(map(FORMAT_INT, range(first, first + count)))
        meta = head + (b"}" + head).join(digits) + b"}"
        lengths = np.fromiter(map(len, digits), dtype=np.uint64, count=count)
        return meta, lengths + np.uint64(len(head) + 1)
    sequences = np.arange(first, first + count, dtype=np.uint64)
    powers = np.uint64(10) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    rows = np.empty((count, len(head) + width + 1), dtype=np.uint8)
    rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    rows[:, len(head) : -1] = sequences[:, None] // powers % np.uint64(10) + np.uint64(48)
    rows[:, -1] = ord("}")
    return rows.tobytes(), np.full(count, rows.shape[1], dtype=np.uint64)
