"""Offline decoding: where the writer and sender groups of a file are, and low-level reads.

Writer groups are top-level groups with a ``swmr_mode`` or ``constellation_version`` attribute.
Sender groups ``<Type.Name>`` (groups holding ``BOR``, ``EOR`` or ``data_idx``) sit at the file
root, next to the writer group, as Constellation's H5DataWriter and ours write them; files of
earlier versions of this project nest them inside the writer group, which is searched too. A
sender group with a ``data_idx`` dataset uses the SWMR layout, otherwise the normal layout (one
``data_<seq>`` group per record holding ``block_<n>`` datasets).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import h5py
import numpy as np
from h5py import h5d, h5g, h5s

__all__ = [
    "RECORD",
    "SenderGroup",
    "block_names",
    "discover",
    "is_writer",
    "link_names",
    "normal_bytes",
    "open_blocks",
    "read_dataset",
]

_WRITER_ATTRS = ("swmr_mode", "constellation_version")
#: Names of record groups (normal layout) and of their block datasets.
RECORD = re.compile(r"^data_(\d+)$")
_BLOCK = re.compile(r"^block_(\d+)$")


class SenderGroup(NamedTuple):
    """A sender group: its name, the writer group it is nested in (old files) and layout."""

    name: str
    writer: str | None
    group: h5py.Group
    layout: str  # "normal" | "swmr"


def is_writer(obj: Any) -> bool:
    return isinstance(obj, h5py.Group) and any(key in obj.attrs for key in _WRITER_ATTRS)


def _is_sender(obj: Any) -> bool:
    if not isinstance(obj, h5py.Group):
        return False
    return "BOR" in obj or "EOR" in obj or "data_idx" in obj


def discover(h5file: h5py.File, writers: list[str]) -> dict[str, SenderGroup]:
    """Sender groups by name: nested in writer groups (old files), then at the root.

    A name found more than once keeps its plain key at the root; nested ones are then keyed
    ``<writer>/<Type.Name>``.
    """
    found: list[SenderGroup] = []
    for writer in writers:
        for name, obj in h5file[writer].items():
            if _is_sender(obj):
                found.append(SenderGroup(name, writer, obj, _layout(obj)))
    for name, obj in h5file.items():
        if name not in writers and _is_sender(obj):
            found.append(SenderGroup(name, None, obj, _layout(obj)))
    counts: dict[str, int] = {}
    for sender in found:
        counts[sender.name] = counts.get(sender.name, 0) + 1
    return {
        (s.name if counts[s.name] == 1 or s.writer is None else f"{s.writer}/{s.name}"): s
        for s in found
    }


def _layout(group: h5py.Group) -> str:
    return "swmr" if "data_idx" in group else "normal"


def link_names(gid: h5g.GroupID) -> list[str]:
    """Names of a group's links in one HDF5 iteration (h5py's iterator costs one per name)."""
    names: list[str] = []
    gid.links.iterate(lambda name: names.append(name.decode("utf-8", "replace")))
    return names


def block_names(record: h5g.GroupID) -> list[bytes]:
    matches = ((_BLOCK.match(name), name) for name in link_names(record))
    return [name.encode() for _, name in sorted((int(m.group(1)), n) for m, n in matches if m)]


def open_blocks(record: h5g.GroupID) -> list[h5d.DatasetID]:
    """The block datasets of a record group, in order.

    The writer names them ``block_00`` ... ``block_<n-1>`` and puts nothing else in the group:
    when the group holds n links and those n names open, they are all of its links, and no
    iteration over the names is needed. Any other group is listed (:func:`block_names`).
    """
    count = record.get_num_objs()
    try:
        return [h5d.open(record, _BLOCK_NAMES[i]) for i in range(count)]
    except (KeyError, IndexError, TypeError, ValueError):
        return [h5d.open(record, name) for name in block_names(record)]


_BLOCK_NAMES = [b"block_%02d" % i for i in range(64)]


def normal_bytes(record: h5g.GroupID) -> int:
    total = 0
    for name in block_names(record):
        dset = h5d.open(record, name)
        total += dset.get_space().get_simple_extent_npoints() * dset.get_type().get_size()
    return total


def read_dataset(dset: h5d.DatasetID) -> np.ndarray:
    """A whole block dataset as a 1-D array (low-level: no high-level wrapper per record)."""
    array = np.empty(dset.shape, dtype=dset.dtype)
    if array.size:
        dset.read(h5s.ALL, h5s.ALL, array)
    return np.atleast_1d(array)
