"""H5DataWriter file layer: the HDF5 datatypes, dataspaces and creation property lists that the
normal layout (:mod:`~satellites.h5datawriter.normal_layout`) makes once and reuses.

Block datasets up to :data:`COMPACT_LIMIT` bytes use the compact layout (the data sits in the
object header: no separate allocation); larger ones are contiguous and allocated late, or
chunked with the configured filter when compression is on. No object records time stamps and
no dataset is filled before its one write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from h5py import h5d, h5p, h5s, h5t, h5z

from satellites.h5datawriter.attrs import STR_DTYPE

__all__ = ["COMPACT_LIMIT", "Types"]

#: Blocks up to this many bytes are stored in the object header (compact layout).
COMPACT_LIMIT = 16 * 1024
_MAX_SPACES = 4096
_MAX_CHUNKED = 256


class Types:
    """Caches of HDF5 datatypes, dataspaces and creation property lists (one per file)."""

    def __init__(self, compression: Mapping[str, Any]) -> None:
        self.compression = dict(compression)
        self._types: dict[Any, h5t.TypeID] = {}
        self._dtypes: dict[str, np.dtype[Any] | None] = {}
        self._spaces: dict[tuple[int, ...], h5s.SpaceID] = {}
        self._chunked: OrderedDict[int, h5p.PropDCID] = OrderedDict()
        self.str_type = h5t.py_create(STR_DTYPE, logical=True)
        self.gcpl = h5p.create(h5p.GROUP_CREATE)
        self.gcpl.set_obj_track_times(False)
        self.compact = self._dcpl(h5d.COMPACT)
        self.contiguous = self._dcpl(h5d.CONTIGUOUS)
        self.contiguous.set_alloc_time(h5d.ALLOC_TIME_LATE)
        self.copypl = h5p.create(h5p.OBJECT_COPY)

    @staticmethod
    def _dcpl(layout: int) -> h5p.PropDCID:
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_layout(layout)
        dcpl.set_fill_time(h5d.FILL_TIME_NEVER)
        dcpl.set_obj_track_times(False)
        return dcpl

    def block_dtype(self, name: Any) -> np.dtype[Any] | None:
        """The numpy dtype named by a ``dtype`` tag, or None if h5py cannot store it."""
        key = str(name)
        if key not in self._dtypes:
            self._dtypes[key] = self._resolve(key)
        return self._dtypes[key]

    def _resolve(self, name: str) -> np.dtype[Any] | None:
        try:
            dtype = np.dtype(name)
            if dtype.itemsize == 0 or dtype.hasobject:
                return None
            self.type_of(dtype)
        except (TypeError, ValueError):
            return None
        return dtype

    def type_of(self, dtype: np.dtype[Any]) -> h5t.TypeID:
        """HDF5 datatype of a numpy dtype (variable-length UTF-8 for string attributes)."""
        if dtype.hasobject:
            return self.str_type
        tid = self._types.get(dtype)
        if tid is None:
            tid = self._types[dtype] = h5t.py_create(dtype, logical=True)
        return tid

    def space(self, shape: tuple[int, ...]) -> h5s.SpaceID:
        """A scalar or simple dataspace of ``shape``."""
        sid = self._spaces.get(shape)
        if sid is None:
            if len(self._spaces) > _MAX_SPACES:
                self._spaces.clear()
            sid = h5s.create(h5s.SCALAR) if shape == () else h5s.create_simple(shape)
            self._spaces[shape] = sid
        return sid

    def block_dcpl(self, nbytes: int, count: int) -> h5p.PropDCID:
        """Creation properties of a block dataset with ``count`` elements (``nbytes`` bytes)."""
        if self.compression and count > 0:
            return self._chunked_dcpl(count)
        return self.compact if nbytes <= COMPACT_LIMIT else self.contiguous

    def _chunked_dcpl(self, count: int) -> h5p.PropDCID:
        dcpl = self._chunked.get(count)
        if dcpl is not None:
            self._chunked.move_to_end(count)
            return dcpl
        dcpl = self._dcpl(h5d.CHUNKED)
        dcpl.set_chunk((count,))
        _apply_filter(dcpl, self.compression)
        self._chunked[count] = dcpl
        if len(self._chunked) > _MAX_CHUNKED:
            self._chunked.popitem(last=False)
        return dcpl


def _apply_filter(dcpl: h5p.PropDCID, kwargs: Mapping[str, Any]) -> None:
    """Set the filter described by h5py/hdf5plugin ``create_dataset`` keyword arguments."""
    filter_id = kwargs["compression"]
    opts = kwargs.get("compression_opts")
    if filter_id == "gzip":
        dcpl.set_deflate(4 if opts is None else int(opts))
        return
    dcpl.set_filter(int(filter_id), h5z.FLAG_OPTIONAL, tuple(opts or ()))
