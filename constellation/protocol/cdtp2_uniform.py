"""Protocol layer: the uniform-batch fast path of CDTP v2 DATA messages (pure, no I/O).

In the usual DATA message (docs/protocols.md) every record ``[seq, tags, [block, ...]]`` has the
same tag bytes and the same block lengths, and the sequence numbers are consecutive with the
same msgpack integer width: the records sit in the frame at a constant stride. Then
:func:`parse_uniform` checks the whole batch with a few numpy comparisons on a strided view of
the frame and returns a :class:`UniformBatch` whose blocks are zero-copy ``(count, length)``
views of the frame. Anything else (including every malformed frame) returns None, and the
general decoder in :mod:`constellation.protocol.cdtp2` produces the result or the error.

Why the check is exact: the first record is parsed by hand; if every later row of the strided
view repeats the first record's bytes except the sequence-number value and the block bytes,
then (msgpack being self-delimiting) each row is a record of the same layout, which starts the
next row exactly one stride later.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import msgpack
import numpy as np

from constellation.errors import DecodeError
from constellation.protocol.cdtp2 import CDTPType, DataRecord
from constellation.protocol.cdtp2_shared import _SIZED, _UINT_HEADS, _array_header, _skip
from constellation.protocol.common import Protocol, check_keys, check_type, unpack_prefix

__all__ = ["UniformBatch", "UniformMessage", "UniformRecords", "decode_uniform", "parse_uniform"]

_BIN_HEADS = (0xC4, 0xC5, 0xC6)
_SCALARS = (str, int, float, bool, bytes, type(None))


@dataclass(frozen=True, eq=False)
class UniformBatch:
    """Records ``first_seq .. first_seq + count - 1`` sharing one tag map and block layout.

    ``blocks[k]`` is a read-only ``(count, block_lengths[k])`` uint8 view of the received frame
    (it keeps the frame alive). ``tags`` is decoded once; do not modify it.
    """

    first_seq: int
    count: int
    tags: dict[str, Any]
    block_lengths: tuple[int, ...]
    blocks: tuple[np.ndarray, ...]
    tag_bytes: bytes = field(repr=False)

    @property
    def record_bytes(self) -> int:
        """Block bytes of one record."""
        return sum(self.block_lengths)

    @property
    def nbytes(self) -> int:
        """Block bytes of the whole batch."""
        return self.count * self.record_bytes

    def block_data(self) -> np.ndarray:
        """Every record's blocks back to back, as one contiguous 1-D uint8 array (one copy)."""
        if len(self.blocks) == 1:
            return np.ascontiguousarray(self.blocks[0]).reshape(-1)
        if not self.blocks:
            return np.empty(0, dtype=np.uint8)
        return np.concatenate(self.blocks, axis=1).reshape(-1)

    def records(self) -> list[DataRecord]:
        """The batch as DataRecords, equal to what the general decoder returns."""
        count = self.count
        lengths = self.block_lengths
        columns = [self.blocks[k].tobytes() for k in range(len(lengths))]
        sequences = range(self.first_seq, self.first_seq + count)
        tags = self.tags
        if all(type(v) in _SCALARS for v in tags.values()):
            tag_maps = [dict(tags) for _ in range(count)] if tags else [{} for _ in range(count)]
        else:  # nested values: one independent decoding per record
            tag_maps = [_unpack(self.tag_bytes) for _ in range(count)]
        block_lists: list[list[bytes]] = [[] for _ in range(count)]
        for column, length in zip(columns, lengths, strict=True):
            if not length:
                for blocks in block_lists:
                    blocks.append(b"")
                continue
            for blocks, start in zip(block_lists, range(0, count * length, length), strict=True):
                blocks.append(column[start : start + length])
        return list(map(DataRecord, sequences, tag_maps, block_lists))


class UniformRecords(Sequence[DataRecord]):
    """A lazy read-only sequence of a batch's DataRecords (built once, on first item access)."""

    def __init__(self, batch: UniformBatch) -> None:
        self.batch = batch
        self._records: list[DataRecord] | None = None

    def __len__(self) -> int:
        return self.batch.count

    def _all(self) -> list[DataRecord]:
        if self._records is None:
            self._records = self.batch.records()
        return self._records

    @overload
    def __getitem__(self, index: int) -> DataRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[DataRecord]: ...
    def __getitem__(self, index: int | slice) -> DataRecord | list[DataRecord]:
        if isinstance(index, int) and self._records is None:
            batch = self.batch
            position = index + batch.count if index < 0 else index
            if not 0 <= position < batch.count:
                raise IndexError("record index out of range")
            return _record_at(batch, position)
        return self._all()[index]

    def __iter__(self) -> Iterator[DataRecord]:
        return iter(self._all())


def _record_at(batch: UniformBatch, position: int) -> DataRecord:
    blocks = [view[position].tobytes() for view in batch.blocks]
    return DataRecord(batch.first_seq + position, _unpack(batch.tag_bytes), blocks)


@dataclass(frozen=True, eq=False)
class UniformMessage:
    """A DATA message decoded by the fast path; ``records`` builds DataRecords lazily."""

    sender: str
    batch: UniformBatch
    records: UniformRecords = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", UniformRecords(self.batch))

    @property
    def msg_type(self) -> CDTPType:
        return CDTPType.DATA


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=True)


def decode_uniform(frame: Any) -> UniformMessage | None:
    """A single-frame DATA message as a :class:`UniformMessage`, or None (use the general
    decoder: another message type, a non-uniform batch or a malformed frame)."""
    try:
        view = memoryview(frame).cast("B")
        (_, sender, raw_type), end = unpack_prefix(view, 3, Protocol.CDTP2, "CDTP2 message", 3)
        check_type(sender, str, "CDTP2 sender")
    except (DecodeError, TypeError, ValueError):
        return None
    if raw_type != CDTPType.DATA or type(raw_type) is not int:
        return None
    batch = parse_uniform(view, end)
    return None if batch is None else UniformMessage(sender, batch)


def parse_uniform(data: memoryview, pos: int) -> UniformBatch | None:
    """The record array at ``pos`` (running to the end of ``data``) as a UniformBatch, or None."""
    try:
        return _parse(data, pos)
    except (IndexError, KeyError, ValueError, TypeError, DecodeError, msgpack.UnpackException):
        return None


def _parse(data: memoryview, pos: int) -> UniformBatch | None:
    count, start = _array_header(data, pos)
    if count == 0 or data[start] != 0x93:
        return None
    # --- the first record, by hand: [0x93, seq, tags, blocks]
    head = data[start + 1]
    if head <= 0x7F:  # positive fixint: the head byte is the value
        seq_width, value_at = 0, start + 1
    elif head in _UINT_HEADS:
        seq_width, value_at = _UINT_HEADS[head].size, start + 2
    else:
        return None  # signed or not an integer
    tags_at = start + 2 + seq_width
    blocks_at = _skip(data, tags_at)
    tag_bytes = bytes(data[tags_at:blocks_at])
    tags = _unpack(tag_bytes)
    if type(tags) is not dict:
        return None
    check_keys(tags, "CDTP2 record tags")
    nblocks, pos = _array_header(data, blocks_at)
    fixed: list[tuple[int, int]] = []  # column ranges (relative) that must repeat in every row
    spans: list[tuple[int, int]] = []  # block byte ranges (relative)
    lengths: list[int] = []
    fixed.append((0, value_at - start))  # 0x93 and the integer head (if not a fixint)
    segment_start = value_at + max(seq_width, 1)
    for _ in range(nblocks):
        block_head = data[pos]
        if block_head not in _BIN_HEADS:
            return None
        size_struct, offset = _SIZED[block_head]
        size = size_struct.unpack_from(data, pos + 1)[0]
        fixed.append((segment_start - start, pos + offset - start))
        spans.append((pos + offset - start, pos + offset + size - start))
        lengths.append(size)
        pos += offset + size
        segment_start = pos
    fixed.append((segment_start - start, pos - start))
    stride = pos - start
    if start + count * stride != len(data):
        return None
    rows = np.frombuffer(data, dtype=np.uint8, count=count * stride, offset=start)
    rows = rows.reshape(count, stride)
    for lo, hi in fixed:
        if hi > lo and count > 1 and not (rows[1:, lo:hi] == rows[0, lo:hi]).all():
            return None
    rel = value_at - start
    if seq_width:
        sequences = np.ascontiguousarray(rows[:, rel : rel + seq_width])
        sequences = sequences.view(f">u{seq_width}").reshape(count)
    else:
        sequences = rows[:, rel]
        if int(sequences.max()) > 0x7F:
            return None
    first, last = int(sequences[0]), int(sequences[-1])
    if last - first != count - 1:
        return None
    if count > 2 and not (np.diff(sequences.astype(np.uint64)) == 1).all():
        return None  # with the first and last exact, a wrapped difference cannot pass here
    blocks = tuple(rows[:, lo:hi] for lo, hi in spans)
    return UniformBatch(first, count, tags, tuple(lengths), blocks, tag_bytes)
