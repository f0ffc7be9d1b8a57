"""Offline decoding: windows of SWMR records that differ only in their sequence number.

A DAQ run often sends many records with the same tags and block lengths; our writer then stores
each record's meta as the same text ``{<tags>,"block_lengths":[...],"sequence":`` followed by
the number and ``}``. :func:`uniform_window` recognises such a window with a handful of
whole-buffer operations (one ``bytes.split``, numpy comparisons) instead of one meta split per
record, and gives what :func:`~constellation.reader.swmr_meta.split_meta` would give for every
record: the shared tags text and lengths, and the sequence numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from constellation.reader.swmr_meta import split_meta

__all__ = ["Uniform", "uniform_window"]

_DIGITS = b"0123456789"
_CLOSE = ord("}")
_ZERO = ord("0")


class Uniform(NamedTuple):
    """The shared parts of a uniform window, and each record's sequence number."""

    tags_json: bytes
    lengths: list[int]
    sequences: list[int]


def uniform_window(meta: bytes, meta_ends: list[int], data_ends: list[int]) -> Uniform | None:
    """The window's shared meta if every record has the first one's text but its number.

    ``meta_ends`` and ``data_ends`` are relative, with 0 (the previous record's end) first.
    None if the window is not uniform (then each record is split on its own).
    """
    count = len(meta_ends) - 1
    if count < 2:
        return None
    try:
        first = split_meta(meta[: meta_ends[1]])
    except ValueError:
        return None
    if first.tags_json is None or first.lengths is None or first.sequence is None:
        return None
    head = meta[: meta_ends[1] - len(b"%d}" % first.sequence)]
    if not head.endswith(b'"sequence":'):
        return None
    tails = meta.split(head)
    if len(tails) != count + 1 or tails[0]:
        return None
    tails = tails[1:]
    sizes = np.fromiter(map(len, tails), np.int64, count)
    if not np.array_equal(sizes + len(head), np.diff(np.asarray(meta_ends, np.int64))):
        return None  # some record is not head + tail: its meta has another form
    joined = b"".join(tails)
    if joined.translate(None, _DIGITS) != b"}" * count:
        return None
    text = np.frombuffer(joined, np.uint8)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    if not np.all(text[ends - 1] == _CLOSE) or np.any(sizes < 2):
        return None  # each tail is digits and a closing brace
    if np.any((text[starts] == _ZERO) & (sizes > 2)):
        return None  # a leading zero: no JSON number (each record is split, and fails)
    if not np.all(np.diff(np.asarray(data_ends, np.int64)) == sum(first.lengths)):
        return None
    return Uniform(first.tags_json, first.lengths, _numbers(text, ends - 1, sizes - 1, tails))


def _numbers(
    text: np.ndarray, ends: np.ndarray, digits: np.ndarray, tails: list[bytes]
) -> list[int]:
    """The decimal numbers ending before ``ends`` in ``text``, ``digits`` long each."""
    width = int(digits.max())
    if width > 18:  # beyond int64: one by one
        return [int(tail[:-1]) for tail in tails]
    offsets = np.arange(width, 0, -1)  # position before the end, most significant first
    positions = ends[:, None] - offsets[None, :]
    inside = offsets[None, :] <= digits[:, None]
    values = np.where(inside, text[np.where(inside, positions, 0)].astype(np.int64) - _ZERO, 0)
    numbers: list[int] = (values @ (10 ** np.arange(width - 1, -1, -1, dtype=np.int64))).tolist()
    return numbers
