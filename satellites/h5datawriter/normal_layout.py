"""H5DataWriter file layer: records in the normal layout (docs/file-format.md), made fast.

Each record becomes a group ``data_<seq 9 digits>`` (attributes = the record's tags, flattened)
holding one dataset ``block_<2 digits>`` per block, typed by the ``dtype`` tag (uint8 when absent,
unknown, or not dividing the block length).

Creating a group, its attributes and datasets costs a dozen HDF5 calls, each with h5py overhead.
Records of a run usually share their shape (same tag names and types, same block sizes), so the
second record of a shape builds a *template* record in an in-memory HDF5 file; every further
record of that shape only writes its block data (and changed tag values) into the template and
copies it into the output file with one ``H5Ocopy``. Records of a new shape, or large ones, are
created directly with the low-level API (no high-level wrappers, compact layout for small
blocks, no time stamps). In a batch whose records repeat the first one's tags and block
lengths (the usual case, and every :class:`~constellation.protocol.cdtp2_uniform.UniformBatch`)
the later records are *rows*: two libhdf5 calls each (block write, copy), made through
:mod:`~satellites.h5datawriter.libhdf5` so that the GIL is free while libhdf5 works.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import h5py
import numpy as np
from h5py import h5a, h5d, h5g, h5o, h5s, h5t

from constellation.protocol.cdtp2 import DataRecord
from constellation.protocol.cdtp2_uniform import UniformBatch
from satellites.h5datawriter import libhdf5
from satellites.h5datawriter.normal_records import (
    Prepared,
    RecordLike,
    attr_array,
    prepare,
    record_name,
    same_value,
    uniform_columns,
)
from satellites.h5datawriter.normal_types import COMPACT_LIMIT, Types

__all__ = ["COMPACT_LIMIT", "TEMPLATE_LIMIT", "NormalLayout", "RecordLike", "record_name"]

#: Records with more block bytes than this are always created directly (no template copy).
TEMPLATE_LIMIT = 256 * 1024
_MAX_TEMPLATES = 32
_MAX_SEEN = 1024
_ids = itertools.count()


class _Template(NamedTuple):
    """A record in the in-memory file whose objects stay open for rewriting."""

    name: bytes
    attr_ids: list[h5a.AttrID]
    dset_ids: list[h5d.DatasetID]
    block_types: list[h5t.TypeID]
    values: list[Any]


class NormalLayout:
    """Writes records as groups of datasets under a sender group (one instance per file)."""

    def __init__(self, compression: dict[str, Any], libver: tuple[str, str]) -> None:
        self._types = Types(compression)
        self._libver = libver
        self._memfile: h5py.File | None = None
        self._templates: OrderedDict[tuple[Any, ...], _Template] = OrderedDict()
        self._seen: set[tuple[Any, ...]] = set()

    def write(self, group: h5py.Group, records: Sequence[RecordLike]) -> tuple[int, int]:
        """Write ``records`` under ``group``; returns (records written, block bytes written)."""
        if not records:
            return 0, 0
        gid = group.id
        nbytes = self._write_one(gid, records[0])
        rest = records[1:]
        columns = uniform_columns(records[0], rest)
        if columns is not None:
            template = self._template_of(records[0])
            if template is None and len(rest) > 1:  # a new shape: the next record makes one
                nbytes += self._write_one(gid, rest[0])
                template = self._template_of(rest[0])
                rest, columns = rest[1:], [column[1:] for column in columns]
            if template is not None:
                sequences = [record.sequence for record in rest]
                return len(records), nbytes + self._write_rows(gid, template, sequences, columns)
        for record in rest:
            nbytes += self._write_one(gid, record)
        return len(records), nbytes

    def write_uniform(self, group: h5py.Group, batch: UniformBatch) -> tuple[int, int]:
        """Write a uniform batch: the same objects as :meth:`write` with its records, without
        building more than its first two records."""
        if batch.count < 3:
            return self.write(group, batch.records())
        gid = group.id
        nbytes, start = 0, 0
        template = None
        while template is None and start < 2:
            record = _record_at(batch, start)
            nbytes += self._write_one(gid, record)
            template = self._template_of(record)
            start += 1
        if template is None:  # not templated (large records): one by one
            for record in batch.records()[start:]:
                nbytes += self._write_one(gid, record)
            return batch.count, nbytes
        columns = [np.asarray(block[start:]) for block in batch.blocks]
        sequences = range(batch.first_seq + start, batch.first_seq + batch.count)
        return batch.count, nbytes + self._write_rows(gid, template, sequences, columns)

    def _write_one(self, gid: h5g.GroupID, record: RecordLike) -> int:
        name = record_name(record.sequence)
        try:
            return self._write_record(gid, name, record)
        except (ValueError, RuntimeError) as exc:
            _raise_duplicate(exc, record.sequence)
            raise

    def _template_of(self, record: RecordLike) -> _Template | None:
        """The template last filled with ``record`` (None if it was created directly)."""
        return self._templates.get(prepare(record, self._types.block_dtype).key)

    def _write_rows(
        self,
        gid: h5g.GroupID,
        template: _Template,
        sequences: Sequence[int],
        columns: list[np.ndarray],
    ) -> int:
        """Write records ``sequences`` whose blocks are the rows of ``columns`` (one 2-D uint8
        array per block) and whose tags are the template's: refill its blocks, copy it."""
        columns = [c if c.strides[1:] in ((), (1,)) else np.ascontiguousarray(c) for c in columns]
        blocks = [
            (did, tid, column)
            for did, tid, column in zip(
                template.dset_ids, template.block_types, columns, strict=True
            )
            if column.shape[1]  # an empty block dataset needs no writing
        ]
        raw = libhdf5.raw()
        if raw is None:
            self._rows_h5py(gid, template, sequences, blocks)
        else:
            with libhdf5.PHIL:
                self._rows_direct(raw, gid, template, sequences, blocks)
        return int(sum(column.shape[1] for column in columns)) * len(sequences)

    def _rows_direct(
        self,
        raw: libhdf5.RawHdf5,
        gid: h5g.GroupID,
        template: _Template,
        sequences: Sequence[int],
        blocks: list[tuple[h5d.DatasetID, h5t.TypeID, np.ndarray]],
    ) -> None:
        """:meth:`_write_rows` through ctypes; a failing call is redone through h5py, which
        raises the error (or, should it succeed this time, just goes on)."""
        dwrite, ocopy = raw.dwrite, raw.ocopy
        default, everything = libhdf5.H5P_DEFAULT, libhdf5.H5S_ALL
        mem, src, dst, copypl = self._mem().id.id, template.name, gid.id, self._types.copypl.id
        plan = [(did.id, tid.id, c.ctypes.data, c.strides[0]) for did, tid, c in blocks]
        for row, sequence in enumerate(sequences):
            for (did, tid, base, stride), (dset, mtype, column) in zip(plan, blocks, strict=True):
                if dwrite(did, tid, everything, everything, default, base + row * stride) < 0:
                    _write_block(dset, column[row].view(mtype.dtype), mtype)
            name = record_name(sequence)
            if ocopy(mem, src, dst, name, copypl, default) < 0:
                self._copy_h5py(gid, template, name, sequence)

    def _rows_h5py(
        self,
        gid: h5g.GroupID,
        template: _Template,
        sequences: Sequence[int],
        blocks: list[tuple[h5d.DatasetID, h5t.TypeID, np.ndarray]],
    ) -> None:
        for row, sequence in enumerate(sequences):
            for dset, mtype, column in blocks:
                _write_block(dset, column[row].view(mtype.dtype), mtype)
            self._copy_h5py(gid, template, record_name(sequence), sequence)

    def _copy_h5py(self, gid: h5g.GroupID, template: _Template, name: bytes, sequence: int) -> None:
        try:
            _copy_object(self._mem().id, template.name, gid, name, self._types.copypl)
        except (ValueError, RuntimeError) as exc:
            _raise_duplicate(exc, sequence)
            raise

    def _write_record(self, gid: h5g.GroupID, name: bytes, record: RecordLike) -> int:
        prepared = prepare(record, self._types.block_dtype)
        template = self._templates.get(prepared.key)
        if template is not None:
            self._templates.move_to_end(prepared.key)
        elif prepared.nbytes <= TEMPLATE_LIMIT and prepared.key in self._seen:
            template = self._new_template(prepared)
        if template is None:
            self._seen_once(prepared.key)
            self._build(gid, name, prepared)
        else:
            self._fill(template, prepared)
            _copy_object(self._mem().id, template.name, gid, name, self._types.copypl)
        return prepared.nbytes

    def _seen_once(self, key: tuple[Any, ...]) -> None:
        if len(self._seen) >= _MAX_SEEN:
            self._seen.clear()
        self._seen.add(key)

    def _build(self, loc: Any, name: bytes, prepared: Prepared) -> _Template:
        """Create a record group with its attributes and block datasets under ``loc``."""
        types = self._types
        gid = h5g.create(loc, name, gcpl=types.gcpl)
        attr_ids = []
        for attr_name, raw in zip(prepared.names, prepared.values, strict=True):
            value = attr_array(raw)
            tid = types.type_of(value.dtype)
            aid = h5a.create(gid, attr_name.encode(), tid, types.space(value.shape))
            _write_attr(aid, value, tid)
            attr_ids.append(aid)
        dset_ids, block_types = [], []
        for index, block in enumerate(prepared.blocks):
            dcpl = types.block_dcpl(block.nbytes, block.shape[0])
            tid = types.type_of(block.dtype)
            did = h5d.create(gid, b"block_%02d" % index, tid, types.space(block.shape), dcpl=dcpl)
            _write_block(did, block, tid)
            dset_ids.append(did)
            block_types.append(tid)
        return _Template(name, attr_ids, dset_ids, block_types, list(prepared.values))

    def _new_template(self, prepared: Prepared) -> _Template:
        if len(self._templates) >= _MAX_TEMPLATES:
            _, old = self._templates.popitem(last=False)
            del self._mem()[old.name.decode()]
        template = self._build(self._mem().id, b"t%d" % next(_ids), prepared)
        self._templates[prepared.key] = template
        return template

    def _fill(self, template: _Template, prepared: Prepared) -> None:
        types = self._types
        current = template.values
        for index, raw in enumerate(prepared.values):
            if not same_value(current[index], raw):
                value = attr_array(raw)
                _write_attr(template.attr_ids[index], value, types.type_of(value.dtype))
                current[index] = raw
        for did, block in zip(template.dset_ids, prepared.blocks, strict=True):
            _write_block(did, block, types.type_of(block.dtype))

    def _mem(self) -> h5py.File:
        if self._memfile is None:
            name = f"constellation-h5-template-{id(self)}-{next(_ids)}"
            self._memfile = h5py.File(
                name, "w", driver="core", backing_store=False, libver=self._libver
            )
        return self._memfile

    def close(self) -> None:
        """Release the in-memory template file."""
        self._templates.clear()
        self._seen.clear()
        if self._memfile is not None:
            self._memfile.close()
            self._memfile = None


def _record_at(batch: UniformBatch, index: int) -> DataRecord:
    """Record ``index`` of a uniform batch (its own tag map and ``bytes`` blocks)."""
    blocks = [block[index].tobytes() for block in batch.blocks]
    return DataRecord(batch.first_seq + index, dict(batch.tags), blocks)


def _raise_duplicate(exc: Exception, sequence: int) -> None:
    if "already exists" in str(exc):
        raise ValueError(f"duplicate sequence number {sequence}") from exc


def _write_attr(aid: h5a.AttrID, value: np.ndarray, tid: h5t.TypeID) -> None:
    """Write one attribute value (single patch point for tests)."""
    if value.dtype.hasobject:  # variable-length strings: h5py converts them itself
        aid.write(value)
    else:
        aid.write(value, mtype=tid)


def _write_block(did: h5d.DatasetID, block: np.ndarray, tid: h5t.TypeID) -> None:
    """Write one block dataset in full (single patch point for tests)."""
    did.write(h5s.ALL, h5s.ALL, block, mtype=tid)


def _copy_object(src: Any, src_name: bytes, dst: Any, dst_name: bytes, copypl: Any) -> None:
    """Copy a template record into the output file (single patch point for tests)."""
    h5o.copy(src, src_name, dst, dst_name, copypl=copypl)
