"""H5DataWriter file layer: records in the SWMR layout (docs/file-format.md), appended in batches.

Per sender four resizable 1-D datasets are created at its BOR: ``data`` (uint8, all blocks
back to back), ``data_idx`` (uint64, end offset in ``data`` of each record), ``meta`` (uint8,
each record's tags as compact UTF-8 JSON plus ``block_lengths`` and ``sequence`` — the record's
sequence number, which the layout would otherwise lose; these two names are reserved and
override tags of the same name; encoded by :mod:`~satellites.h5datawriter.swmr_meta`) and
``meta_idx`` (uint64, end offset in ``meta``). Capacity
grows geometrically and is zero-filled, so index entries past the last record read 0 — the
end-of-data marker. Encoded batches are held back until about :data:`PENDING_BYTES` are
pending (or the next :meth:`SwmrSender.flush`) and then written with at most one resize and
one slice write per dataset: HDF5's fixed cost per write is paid once per megabyte, not per
DATA message. Batches whose records all carry the same tags and single ``bytes`` blocks of
one length (the usual case) are encoded without a per-record Python loop: the sequence
numbers are formatted in one pass and joined between the shared JSON head and tail. A
:class:`~constellation.protocol.cdtp2_uniform.UniformBatch` (:meth:`SwmrSender.queue_uniform`)
goes the same way without any record objects: its blocks stay views of the received frame
until they are copied once into the data written.
``EOR/user_tags`` and ``EOR/run_metadata`` are pre-created as empty resizable uint8 datasets
(no object may be created once SWMR is on) and filled at the EOR.

Flush order is ``data``, ``meta``, ``meta_idx``, ``data_idx``: a reader that refreshes the
indices first never sees an index entry pointing at data that is not yet on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

import h5py
import numpy as np
from h5py import h5s, h5t

from constellation.protocol.cdtp2_uniform import UniformBatch
from satellites.h5datawriter import libhdf5
from satellites.h5datawriter.attrs import to_json_bytes
from satellites.h5datawriter.normal_records import RecordLike
from satellites.h5datawriter.swmr_meta import FORMAT_INT, MetaEncoder, range_meta, same_tags

__all__ = [
    "DATA_CHUNK",
    "INDEX_CHUNK",
    "META_CHUNK",
    "PENDING_BYTES",
    "PENDING_RECORDS",
    "Appender",
    "SwmrSender",
    "batch_nbytes",
    "record_nbytes",
]

#: Chunk sizes (elements) of the data, meta and index datasets; also their initial capacity.
DATA_CHUNK = 256 * 1024
META_CHUNK = 64 * 1024
INDEX_CHUNK = 8 * 1024
#: Encoded data and meta bytes (or records) held back before they are written to the datasets.
PENDING_BYTES = 1024 * 1024
PENDING_RECORDS = 16 * 1024
_EOR_CHUNK = 1024
_SEQUENCE, _TAGS, _BLOCKS = attrgetter("sequence"), attrgetter("tags"), attrgetter("blocks")
_FIRST = itemgetter(0)


_Encoded = tuple[list[bytes | np.ndarray], np.ndarray, bytes, np.ndarray]


class _SequenceRun:
    """Uniform batches queued one after the other with the same meta head and consecutive
    sequence numbers: their meta is encoded in one :func:`range_meta` call when written."""

    def __init__(self, data: bytes | np.ndarray, record_bytes: int, head: bytes, batch: Any):
        self.data = [data]
        self.record_bytes = record_bytes
        self.head = head
        self.first = int(batch.first_seq)
        self.count = int(batch.count)

    def extends(self, head: bytes, first: int) -> bool:
        return head == self.head and first == self.first + self.count

    def add(self, data: bytes | np.ndarray, count: int) -> None:
        self.data.append(data)
        self.count += count

    def encoded(self) -> _Encoded:
        meta, meta_lengths = range_meta(self.head, self.first, self.count)
        record_bytes = np.full(self.count, self.record_bytes, dtype=np.uint64)
        return self.data, record_bytes, meta, meta_lengths


class Appender:
    """A resizable 1-D dataset with a fill position; grows by doubling, chunk aligned."""

    def __init__(self, dset: h5py.Dataset, size: int = 0) -> None:
        self.dset = dset
        self.size = size
        self.capacity = int(dset.shape[0])
        self._chunk = int(dset.chunks[0]) if dset.chunks else 1

    def append(self, values: np.ndarray) -> None:
        """Append ``values`` with at most one resize and one slice write."""
        count = int(values.shape[0])
        if count == 0:
            return
        end = self.size + count
        if end > self.capacity:
            self._grow(end)
        _write_slice(self.dset, self.size, values)
        self.size = end

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.capacity)
        capacity = -(-capacity // self._chunk) * self._chunk
        self.dset.resize((capacity,))
        self.capacity = capacity

    def flush(self) -> None:
        self.dset.flush()


class SwmrSender:
    """The four append datasets (and the EOR datasets) of one sender group."""

    def __init__(self, group: h5py.Group, compression: Mapping[str, Any]) -> None:
        self.group = group
        data = _create(group, "data", np.uint8, DATA_CHUNK, "DETECTOR_DATA", compression)
        self.data = Appender(data)
        self.data_idx = Appender(_create(group, "data_idx", np.uint64, INDEX_CHUNK, "INDEX"))
        self.meta = Appender(_create(group, "meta", np.uint8, META_CHUNK, "META_DATA"))
        self.meta_idx = Appender(_create(group, "meta_idx", np.uint64, INDEX_CHUNK, "INDEX"))
        eor = group.create_group("EOR")
        self.eor = {
            name: eor.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(_EOR_CHUNK,)
            )
            for name in ("user_tags", "run_metadata")
        }
        self.eor_written = False
        self._encode_meta = MetaEncoder()
        # ([block bytes or uint8 array views], record block sizes, meta bytes, meta sizes), or
        # uniform batches of consecutive sequence numbers, encoded when written
        self._pending: list[_Encoded | _SequenceRun] = []
        self._pending_bytes = 0
        self._pending_records = 0

    @property
    def pending_records(self) -> int:
        """Records encoded but not yet written to the datasets (written by :meth:`flush`)."""
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        """Encoded data and meta bytes not yet written to the datasets."""
        return self._pending_bytes

    @property
    def full(self) -> bool:
        """True once :data:`PENDING_BYTES` or :data:`PENDING_RECORDS` are pending."""
        return self._pending_bytes >= PENDING_BYTES or self._pending_records >= PENDING_RECORDS

    def queue(self, records: Sequence[RecordLike]) -> tuple[int, int]:
        """Encode a batch and hold it back (no HDF5 call); returns (records, block bytes)."""
        encoded = self._encode_uniform(records) or self._encode(records)
        self._pending.append(([encoded[0]], *encoded[1:]))
        self._pending_bytes += len(encoded[0]) + len(encoded[2])
        self._pending_records += len(records)
        return len(records), len(encoded[0])

    def queue_uniform(self, batch: UniformBatch) -> tuple[int, int]:
        """:meth:`queue` for a uniform batch: the same bytes, from the batch's block views and
        the sequence range (no per-record objects); returns (records, block bytes)."""
        prefix = self._encode_meta.prefix_for(batch.tags)
        if prefix is None or batch.count == 0:  # a reserved tag name: the general encoding
            return self.queue(batch.records())
        lengths = ",".join(map(str, batch.block_lengths)).encode()
        head = prefix + b'"block_lengths":[%s],"sequence":' % lengths
        # One block: keep the (count, length) view of the frame, copied once when written.
        data = batch.blocks[0] if len(batch.blocks) == 1 else batch.block_data()
        last = self._pending[-1] if self._pending else None
        if isinstance(last, _SequenceRun) and last.extends(head, batch.first_seq):
            last.add(data, batch.count)
        else:
            self._pending.append(_SequenceRun(data, batch.record_bytes, head, batch))
        meta_bytes = batch.count * (len(head) + len(str(batch.first_seq + batch.count)) + 1)
        self._pending_bytes += batch.nbytes + meta_bytes
        self._pending_records += batch.count
        return batch.count, batch.nbytes

    def append(self, records: Sequence[RecordLike]) -> tuple[int, int]:
        """:meth:`queue` a batch, then write the queue if it is :attr:`full`."""
        result = self.queue(records)
        if self.full:
            self.write_pending()
        return result

    def write_pending(self) -> None:
        """Write the queued batches: data, meta, then the indices (one slice write each)."""
        pending = self._pending
        if not pending:
            return
        self._pending, self._pending_bytes, self._pending_records = [], 0, 0
        encoded = [part.encoded() if isinstance(part, _SequenceRun) else part for part in pending]
        data_parts = [data for entry in encoded for data in entry[0]]
        data = _joined(data_parts)
        if len(encoded) == 1:
            _, record_bytes, meta, meta_lengths = encoded[0]
        else:
            _, record_parts, meta_parts, meta_parts_lengths = zip(*encoded, strict=True)
            meta = b"".join(meta_parts)
            record_bytes = np.concatenate(record_parts)
            meta_lengths = np.concatenate(meta_parts_lengths)
        data_ends = np.cumsum(record_bytes, dtype=np.uint64) + np.uint64(self.data.size)
        meta_ends = np.cumsum(meta_lengths, dtype=np.uint64) + np.uint64(self.meta.size)
        self.data.append(data)
        self.meta.append(np.frombuffer(meta, dtype=np.uint8))
        self.meta_idx.append(meta_ends)
        self.data_idx.append(data_ends)

    def _encode_uniform(
        self, records: Sequence[RecordLike]
    ) -> tuple[bytes, np.ndarray, bytes, np.ndarray] | None:
        """The fast path: same tags, one ``bytes`` block of one length per record (else None)."""
        uniform = uniform_blocks(records)
        if uniform is None:
            return None
        blocks, length = uniform
        tags = list(map(_TAGS, records))
        first = tags[0]
        if first:
            if not all(map(same_tags, [first] * len(tags), tags)):
                return None
        elif any(tags):
            return None
        prefix = self._encode_meta.prefix_for(first)
        if prefix is None:
            return None
        head = prefix + b'"block_lengths":[%d],"sequence":' % length
        digits = list(map(FORMAT_INT, map(_SEQUENCE, records)))
        meta = head + (b"}" + head).join(digits) + b"}"
        meta_lengths = np.fromiter(map(len, digits), dtype=np.uint64, count=len(digits))
        meta_lengths += np.uint64(len(head) + 1)
        record_bytes = np.full(len(blocks), length, dtype=np.uint64)
        return b"".join(blocks), record_bytes, meta, meta_lengths

    def _encode(self, records: Sequence[RecordLike]) -> tuple[bytes, np.ndarray, bytes, np.ndarray]:
        """Any batch, record by record."""
        blocks: list[Any] = []
        record_bytes = np.empty(len(records), dtype=np.uint64)
        metas: list[bytes] = []
        for index, record in enumerate(records):
            lengths = [_nbytes(block) for block in record.blocks]
            blocks.extend(record.blocks)
            record_bytes[index] = sum(lengths)
            metas.append(self._encode_meta(record.tags, lengths, record.sequence))
        meta_lengths = np.fromiter(map(len, metas), dtype=np.uint64, count=len(metas))
        return b"".join(blocks), record_bytes, b"".join(metas), meta_lengths

    def write_eor(self, user_tags: Mapping[str, Any], run_metadata: Mapping[str, Any]) -> None:
        """Fill the pre-created EOR datasets with compact JSON."""
        for name, value in (("user_tags", user_tags), ("run_metadata", run_metadata)):
            payload = np.frombuffer(to_json_bytes(dict(value)), dtype=np.uint8)
            dset = self.eor[name]
            dset.resize((payload.shape[0],))
            _write_slice(dset, 0, payload)
        self.eor_written = True

    def flush(self) -> None:
        """Write what is queued, then flush data before indices (readers never see an index
        ahead of its data)."""
        self.write_pending()
        for appender in (self.data, self.meta, self.meta_idx, self.data_idx):
            appender.flush()
        for dset in self.eor.values():
            dset.flush()


def _joined(parts: Sequence[bytes | np.ndarray]) -> np.ndarray:
    """The parts (bytes, or uint8 arrays such as strided frame views) as one 1-D uint8 array,
    copied once."""
    if len(parts) == 1:
        part = parts[0]
        if isinstance(part, np.ndarray):
            return np.ascontiguousarray(part).reshape(-1)
        return np.frombuffer(part, dtype=np.uint8)
    sizes = [part.nbytes if isinstance(part, np.ndarray) else len(part) for part in parts]
    out = np.empty(sum(sizes), dtype=np.uint8)
    pos = 0
    for part, size in zip(parts, sizes, strict=True):
        target = out[pos : pos + size]
        if isinstance(part, np.ndarray):
            target.reshape(part.shape)[...] = part
        else:
            target[:] = np.frombuffer(part, dtype=np.uint8)
        pos += size
    return out


def _create(
    group: h5py.Group,
    name: str,
    dtype: Any,
    chunk: int,
    cls: str,
    compression: Mapping[str, Any] | None = None,
) -> h5py.Dataset:
    dset = group.create_dataset(
        name,
        shape=(chunk,),
        maxshape=(None,),
        dtype=dtype,
        chunks=(chunk,),
        fillvalue=0,
        **(compression or {}),
    )
    dset.attrs["CLASS"] = cls
    return dset


def _nbytes(block: Any) -> int:
    nbytes = getattr(block, "nbytes", None)
    return len(block) if nbytes is None else int(nbytes)


def record_nbytes(record: RecordLike) -> int:
    """Total bytes of a record's blocks."""
    return sum(map(_nbytes, record.blocks))


def uniform_blocks(records: Sequence[RecordLike]) -> tuple[list[bytes], int] | None:
    """The blocks and their common length if every record has one ``bytes`` block of the same
    length (else None); C-level passes only."""
    block_lists = list(map(_BLOCKS, records))
    if not block_lists or set(map(len, block_lists)) != {1}:
        return None
    blocks = list(map(_FIRST, block_lists))
    if set(map(type, blocks)) != {bytes}:
        return None
    lengths = set(map(len, blocks))
    return (blocks, lengths.pop()) if len(lengths) == 1 else None


def batch_nbytes(records: Sequence[RecordLike]) -> int:
    """Total bytes of the blocks of ``records`` (C loops when every block is ``bytes``)."""
    blocks = list(chain.from_iterable(map(_BLOCKS, records)))
    if set(map(type, blocks)) <= {bytes}:
        return sum(map(len, blocks))
    return sum(map(_nbytes, blocks))


def _write_slice(dset: h5py.Dataset, start: int, values: np.ndarray) -> None:
    """Write ``values`` at ``start`` (single patch point for tests); low-level, no checks.

    Through :mod:`~satellites.h5datawriter.libhdf5` where it can, so the GIL is free while
    libhdf5 copies the bytes (the receive thread goes on decoding meanwhile); a failing direct
    call is redone through h5py, which raises the error."""
    count = int(values.shape[0])
    values = np.ascontiguousarray(values)
    file_space = dset.id.get_space()
    file_space.select_hyperslab((start,), (count,))
    mem_space = h5s.create_simple((count,))
    raw = libhdf5.raw()
    if raw is not None:
        mem_type = _MEM_TYPES.get(values.dtype)
        if mem_type is not None:
            with libhdf5.PHIL:
                status = raw.dwrite(
                    dset.id.id,
                    mem_type.id,
                    mem_space.id,
                    file_space.id,
                    libhdf5.H5P_DEFAULT,
                    values.ctypes.data,
                )
            if status >= 0:
                return
    dset.id.write(mem_space, file_space, values)


#: Memory types of the arrays the SWMR datasets are written from (others go through h5py).
_MEM_TYPES = {np.dtype(np.uint8): h5t.NATIVE_UINT8, np.dtype(np.uint64): h5t.NATIVE_UINT64}
