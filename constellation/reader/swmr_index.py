"""Offline decoding: the SWMR layout's end-of-data rule and windows of records.

Capacity past the last record is zero-filled, so the records are the leading index entries that
are valid: ``meta_idx`` strictly increasing (a record's meta JSON is never empty) and
``data_idx`` non-decreasing, both within their dataset's extent; the first entry that breaks
this (typically a 0) ends the records. Without ``meta``/``meta_idx`` (files of other tools) the
first 0 or decreasing ``data_idx`` entry ends them. Records whose ``data_idx`` is 0 at the start
of the file are accepted only if their meta says they are empty. Record tags come from the meta
JSON; the writer's ``block_lengths`` and ``sequence`` keys are removed from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import h5py
import numpy as np

from constellation.reader.values import Record

__all__ = ["INDEX_WINDOW", "SWMR_DATASETS", "read_window", "swmr_count"]

#: The datasets of a SWMR sender group, in refresh order (indices first).
SWMR_DATASETS = ("data_idx", "meta_idx", "meta", "data")
_LENGTH_KEYS = ("block_lengths", "frame_lengths")
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
    data_ends: np.ndarray  # absolute, with the end of the previous record first
    meta_ends: np.ndarray
    data: np.ndarray
    meta: bytes

    def meta_of(self, position: int) -> dict[str, Any]:
        i = position - self.start
        begin, end = (int(v - self.meta_ends[0]) for v in self.meta_ends[i : i + 2])
        tags: dict[str, Any] = json.loads(self.meta[begin:end].decode("utf-8"))
        return tags

    def lengths(self, position: int) -> list[int]:
        tags = self.meta_of(position)
        for key in _LENGTH_KEYS:
            if key in tags:
                return [int(n) for n in tags[key]]
        begin, end = self._span(position)
        return [end - begin]

    def _span(self, position: int) -> tuple[int, int]:
        i = position - self.start
        base = self.data_ends[0]
        return int(self.data_ends[i] - base), int(self.data_ends[i + 1] - base)

    def records(self) -> Iterator[Record]:
        for position in range(self.start, self.stop):
            yield self.record(position)

    def record(self, position: int) -> Record:
        tags = self.meta_of(position) if self.meta_ends.size else {}
        lengths = next((tags.pop(key) for key in _LENGTH_KEYS if key in tags), None)
        sequence = tags.pop("sequence", position + 1)
        begin, end = self._span(position)
        payload = self.data[begin:end]
        if lengths is None:
            lengths = [end - begin]
        if sum(lengths) != end - begin:
            raise ValueError(
                f"record {position}: block lengths {lengths} do not match its "
                f"{end - begin} bytes in 'data'"
            )
        return Record(int(sequence), tags, _split(payload, lengths, tags.get("dtype")))


def read_window(datasets: Mapping[str, h5py.Dataset], start: int, stop: int) -> _Window:
    """Read index entries and the data/meta bytes of records ``[start, stop)``."""
    first = max(start - 1, 0)
    data_ends = _ends(datasets["data_idx"], first, start, stop)
    stop = start + _byte_limited(data_ends)
    data_ends = data_ends[: stop - start + 1]
    data = np.asarray(datasets["data"][int(data_ends[0]) : int(data_ends[-1])], dtype=np.uint8)
    if "meta_idx" in datasets:
        meta_ends = _ends(datasets["meta_idx"], first, start, stop)
        meta = datasets["meta"][int(meta_ends[0]) : int(meta_ends[-1])].tobytes()
    else:
        meta_ends, meta = np.empty(0, dtype=np.int64), b""
    return _Window(start, stop, data_ends, meta_ends, data, meta)


def _ends(index: h5py.Dataset, first: int, start: int, stop: int) -> np.ndarray:
    values = np.asarray(index[first:stop], dtype=np.int64)
    return values if start > 0 else np.concatenate(([0], values))


def _byte_limited(data_ends: np.ndarray) -> int:
    """Records of the window that fit in the byte budget (at least one)."""
    limit = data_ends[0] + _BYTE_WINDOW
    fitting = int(np.searchsorted(data_ends[1:], limit, side="right"))
    return max(1, fitting)


_DTYPES: dict[str, np.dtype[Any] | None] = {}


def _dtype(name: Any) -> np.dtype[Any] | None:
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


def _split(payload: np.ndarray, lengths: list[int], dtype_name: Any) -> list[np.ndarray]:
    """Cut a record's bytes into blocks typed by the ``dtype`` tag (uint8 if it does not fit)."""
    dtype = None if dtype_name is None else _dtype(dtype_name)
    blocks = []
    offset = 0
    for length in lengths:
        raw = payload[offset : offset + int(length)]
        offset += int(length)
        if dtype is not None and raw.nbytes % dtype.itemsize == 0:
            raw = raw.view(dtype)
        blocks.append(raw)
    return blocks
