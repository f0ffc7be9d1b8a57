"""Offline decoding: the SWMR layout's end-of-data rule and windows of records.

Capacity past the last record is zero-filled, so the records are the leading index entries that
are valid: ``meta_idx`` strictly increasing (a record's meta JSON is never empty) and
``data_idx`` non-decreasing, both within their dataset's extent; the first entry that breaks
this (typically a 0) ends the records. Without ``meta``/``meta_idx`` (files of other tools) the
first 0 or decreasing ``data_idx`` entry ends them. Records whose ``data_idx`` is 0 at the start
of the file are accepted only if their meta says they are empty. Record tags come from the meta
JSON; the writer's ``block_lengths`` and ``sequence`` keys are removed from them
(:mod:`constellation.reader.swmr_meta`). A window of records costs one h5py read per dataset;
its records are then cut from those buffers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import h5py
import numpy as np

from constellation.reader.swmr_meta import MetaParts, TagCache, split_meta
from constellation.reader.swmr_uniform import Uniform, uniform_window
from constellation.reader.values import RawRecord, Record

__all__ = ["INDEX_WINDOW", "SWMR_DATASETS", "read_window", "swmr_count"]

#: The datasets of a SWMR sender group, in refresh order (indices first).
SWMR_DATASETS = ("data_idx", "meta_idx", "meta", "data")
INDEX_WINDOW = 1 << 16  # index entries read at once
_BYTE_WINDOW = 8 << 20  # data bytes read at once (at least one record)


def swmr_count(datasets: Mapping[str, h5py.Dataset]) -> int:
    """Number of valid leading index entries (the end-of-data rule)."""
    data_idx, meta_idx = datasets["data_idx"], datasets.get("meta_idx")
    data_cap = int(datasets["data"].shape[0])
    meta_cap = int(datasets["meta"].shape[0]) if "meta" in datasets else 0
    total = int(data_idx.shape[0])
    if meta_idx is not None:
        total = min(total, int(meta_idx.shape[0]))
    count, prev_data, prev_meta = 0, 0, 0
    for first in range(0, total, INDEX_WINDOW):
        last = min(total, first + INDEX_WINDOW)
        data_ends = np.asarray(data_idx[first:last], dtype=np.int64)
        meta_ends = None if meta_idx is None else np.asarray(meta_idx[first:last], np.int64)
        valid = _valid_prefix(data_ends, prev_data, data_cap, meta_ends, prev_meta, meta_cap)
        count += valid
        if valid < last - first:
            break
        prev_data = int(data_ends[-1])
        prev_meta = 0 if meta_ends is None else int(meta_ends[-1])
    if meta_idx is not None and count:
        count = _leading_zero_check(datasets, count)
    return count


def _valid_prefix(
    data_ends: np.ndarray,
    prev_data: int,
    data_cap: int,
    meta_ends: np.ndarray | None,
    prev_meta: int,
    meta_cap: int,
) -> int:
    previous = np.concatenate(([prev_data], data_ends[:-1]))
    bad = (data_ends < previous) | (data_ends > data_cap)
    if meta_ends is None:
        bad |= data_ends == 0
    else:
        meta_previous = np.concatenate(([prev_meta], meta_ends[:-1]))
        bad |= (meta_ends <= meta_previous) | (meta_ends > meta_cap)
    index = np.flatnonzero(bad)
    return int(index[0]) if index.size else int(data_ends.shape[0])


def _leading_zero_check(datasets: Mapping[str, h5py.Dataset], count: int) -> int:
    """Leading ``data_idx`` zeros count only for records whose meta says they are empty."""
    nonzero = np.flatnonzero(np.asarray(datasets["data_idx"][:count]))
    zeros = int(nonzero[0]) if nonzero.size else count
    if zeros == 0:
        return count
    window = read_window(datasets, 0, zeros)
    for position in range(zeros):
        if sum(window.lengths(position)):
            return position
    return count


class _Window(NamedTuple):
    """Records ``[start, stop)`` of a SWMR sender with their bytes read in one go."""

    start: int
    stop: int
    data_ends: list[int]  # relative to ``data``, with the end of the previous record first
    meta_ends: list[int]  # relative to ``meta``, likewise (empty without meta datasets)
    data: np.ndarray
    meta: bytes

    def parts(self, position: int) -> MetaParts:
        i = position - self.start
        if not self.meta_ends:
            return MetaParts(None, None, b"{}", None)
        return split_meta(self.meta[self.meta_ends[i] : self.meta_ends[i + 1]])

    def lengths(self, position: int) -> list[int]:
        lengths = self.parts(position).lengths
        if lengths is not None:
            return lengths
        i = position - self.start
        return [self.data_ends[i + 1] - self.data_ends[i]]

    def records(self, cache: TagCache) -> Iterator[Record]:
        """The window's records with tags and typed blocks (raises ``ValueError`` if bad)."""
        data = self.data
        uniform = self._uniform()
        for position in range(self.start, self.stop):
            if uniform is None:
                sequence, tags, begin, lengths = self._decode(position, cache)
            else:
                i = position - self.start
                sequence, begin, lengths = uniform.sequences[i], self.data_ends[i], uniform.lengths
                tags = cache.tags(uniform.tags_json)
            dtype = _dtype(tags.get("dtype"))
            blocks = []
            for length in lengths:
                raw = data[begin : begin + length]
                begin += length
                blocks.append(raw.view(dtype) if dtype and length % dtype.itemsize == 0 else raw)
            yield Record(sequence, tags, blocks)

    def raw_records(self, cache: TagCache) -> Iterator[RawRecord]:
        """The window's records as stored: tags or their JSON text, block bytes, dtypes."""
        uniform = self._uniform()
        if uniform is not None:
            yield from self._uniform_raw(uniform, cache)
            return
        for position in range(self.start, self.stop):
            parts, begin, lengths = self._span(position)
            sequence = position + 1 if parts.sequence is None else parts.sequence
            if parts.tags is not None:
                name = parts.tags.get("dtype")
            else:
                assert parts.tags_json is not None
                name = cache.dtype_name(parts.tags_json)
            blocks = self._cut(begin, lengths)
            yield RawRecord(
                sequence, parts.tags, parts.tags_json, blocks, _dtype_strs(name, lengths)
            )

    def _uniform(self) -> Uniform | None:
        return uniform_window(self.meta, self.meta_ends, self.data_ends) if self.meta else None

    def _uniform_raw(self, uniform: Uniform, cache: TagCache) -> Iterator[RawRecord]:
        tags_json, lengths = uniform.tags_json, uniform.lengths
        dtypes = _dtype_strs(cache.dtype_name(tags_json), lengths)  # shared by the records
        data = self.data.data.cast("B")
        if len(lengths) == 1:
            size = lengths[0]
            new = tuple.__new__  # a RawRecord without the Python-level NamedTuple constructor
            for sequence, begin in zip(uniform.sequences, self.data_ends, strict=False):
                yield new(
                    RawRecord, (sequence, None, tags_json, [data[begin : begin + size]], dtypes)
                )
            return
        for sequence, begin in zip(uniform.sequences, self.data_ends, strict=False):
            yield RawRecord(sequence, None, tags_json, self._cut(begin, lengths), dtypes)

    def _cut(self, begin: int, lengths: list[int]) -> list[memoryview]:
        data = self.data.data.cast("B")
        blocks = []
        for length in lengths:
            blocks.append(data[begin : begin + length])
            begin += length
        return blocks

    def _decode(self, position: int, cache: TagCache) -> tuple[int, dict[str, Any], int, list[int]]:
        parts, begin, lengths = self._span(position)
        tags = parts.tags
        if tags is None:
            assert parts.tags_json is not None
            tags = cache.tags(parts.tags_json)
        sequence = position + 1 if parts.sequence is None else parts.sequence
        return sequence, tags, begin, lengths

    def _span(self, position: int) -> tuple[MetaParts, int, list[int]]:
        """Meta parts, first byte in ``data`` and block lengths (checked) of one record."""
        parts = self.parts(position)
        i = position - self.start
        begin, end = self.data_ends[i], self.data_ends[i + 1]
        lengths = parts.lengths
        if lengths is None:
            lengths = [end - begin]
        elif sum(lengths) != end - begin:
            raise ValueError(
                f"record {position}: block lengths {lengths} do not match its "
                f"{end - begin} bytes in 'data'"
            )
        return parts, begin, lengths


def read_window(datasets: Mapping[str, h5py.Dataset], start: int, stop: int) -> _Window:
    """Read index entries and the data/meta bytes of records ``[start, stop)``: one h5py
    read per dataset."""
    first = max(start - 1, 0)
    data_ends = _ends(datasets["data_idx"], first, start, stop)
    stop = start + _byte_limited(data_ends)
    data_ends = data_ends[: stop - start + 1]
    data_base = int(data_ends[0])
    data = np.asarray(datasets["data"][data_base : int(data_ends[-1])], dtype=np.uint8)
    meta_ends: list[int] = []
    meta = b""
    if "meta_idx" in datasets:
        meta_index = _ends(datasets["meta_idx"], first, start, stop)
        meta_base = int(meta_index[0])
        meta = datasets["meta"][meta_base : int(meta_index[-1])].tobytes()
        meta_ends = (meta_index - meta_base).tolist()
    return _Window(start, stop, (data_ends - data_base).tolist(), meta_ends, data, meta)


def _ends(index: h5py.Dataset, first: int, start: int, stop: int) -> np.ndarray:
    values = np.asarray(index[first:stop], dtype=np.int64)
    return values if start > 0 else np.concatenate(([0], values))


def _dtype_strs(name: Any, lengths: list[int]) -> list[str]:
    """The dtype string of each block: the ``dtype`` tag's where it fits the length, else u1."""
    dtype = _dtype(name)
    if dtype is None:
        return ["|u1"] * len(lengths)
    return [dtype.str if length % dtype.itemsize == 0 else "|u1" for length in lengths]


def _byte_limited(data_ends: np.ndarray) -> int:
    """Records of the window that fit in the byte budget (at least one)."""
    limit = data_ends[0] + _BYTE_WINDOW
    fitting = int(np.searchsorted(data_ends[1:], limit, side="right"))
    return max(1, fitting)


_DTYPES: dict[str, np.dtype[Any] | None] = {}


def _dtype(name: Any) -> np.dtype[Any] | None:
    """The numpy dtype a ``dtype`` tag names (None if none, or none that can type bytes)."""
    if name is None:
        return None
    key = str(name)
    if key not in _DTYPES:
        try:
            dtype: np.dtype[Any] | None = np.dtype(key)
            if dtype is not None and (dtype.itemsize == 0 or dtype.hasobject):
                dtype = None
        except (TypeError, ValueError):
            dtype = None
        _DTYPES[key] = dtype
    return _DTYPES[key]
