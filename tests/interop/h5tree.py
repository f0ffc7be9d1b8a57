"""The structure of an HDF5 file as comparable data: paths, object kinds, attribute names.

Used to compare a file of Constellation's H5DataWriter with one of ours. Values are left out
(runs differ in length and time); what is compared is the tree: every object path with the
canonical names replaced by placeholders and the record groups ``data_<9 digits>`` folded
into one ``data_<seq>``, each object's kind (group, or dataset with its dtype and shape kind),
its attribute names and their stored dtypes. The JSON held by uint8 datasets (SWMR ``meta``
records and EOR maps) is part of the format too: its keys appear as a pseudo-object
``<path>:json`` whose "attribute names" are the union of the keys of every JSON object there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

__all__ = ["Node", "compare", "describe", "json_objects", "shape_kind"]

_RECORD = re.compile(r"^data_\d{9}$")


class Node(NamedTuple):
    """One normalised path: the kinds seen there, the attribute names and their dtypes."""

    kinds: frozenset[str]
    attrs: frozenset[str]
    attr_types: frozenset[tuple[str, str]] = frozenset()


def shape_kind(dset: h5py.Dataset) -> str:
    """``scalar``, or ``<n>-D fixed`` / ``<n>-D resizable`` (any unlimited dimension)."""
    if dset.shape == ():
        return "scalar"
    resizable = dset.maxshape is not None and any(m is None for m in dset.maxshape)
    return f"{len(dset.shape)}-D {'resizable' if resizable else 'fixed'}"


def _normalise(path: list[str], names: Mapping[str, str]) -> str:
    parts = [names.get(part, "data_<seq>" if _RECORD.match(part) else part) for part in path]
    return "/" + "/".join(parts)


def describe(path: Path, names: Mapping[str, str]) -> dict[str, Node]:
    """The tree of ``path``; ``names`` maps canonical names to placeholders."""
    kinds: dict[str, set[str]] = {}
    attrs: dict[str, set[str]] = {}
    types: dict[str, set[tuple[str, str]]] = {}

    def add(name: str, obj: h5py.Group | h5py.Dataset) -> None:
        key = _normalise(name.split("/") if name else [], names)
        if isinstance(obj, h5py.Dataset):
            kind = f"dataset {obj.dtype.str} {shape_kind(obj)}"
        else:
            kind = "group"
        kinds.setdefault(key, set()).add(kind)
        attrs.setdefault(key, set()).update(obj.attrs)
        stored = ((a, obj.attrs.get_id(a).dtype.str) for a in obj.attrs)
        types.setdefault(key, set()).update(stored)
        if isinstance(obj, h5py.Dataset) and _holds_json(obj):
            objects = list(json_objects(obj))
            if objects:
                kinds.setdefault(f"{key}:json", set()).add("json")
                attrs.setdefault(f"{key}:json", set()).update(*(o.keys() for o in objects))

    with h5py.File(path, "r") as h5file:
        add("", h5file)
        h5file.visititems(add)
    return {
        key: Node(frozenset(kinds[key]), frozenset(attrs[key]), frozenset(types.get(key, ())))
        for key in sorted(kinds)
    }


def _holds_json(dset: h5py.Dataset) -> bool:
    name = dset.name or ""
    holder = name.endswith("/meta") or "/EOR/" in name
    return holder and dset.dtype == np.uint8 and dset.ndim == 1


def json_objects(dset: h5py.Dataset) -> Iterator[dict[str, object]]:
    """The JSON objects of a ``meta`` dataset (cut by its ``meta_idx``) or of an EOR dataset."""
    raw = dset[()].tobytes()
    index = dset.parent.get("meta_idx") if (dset.name or "").endswith("/meta") else None
    if index is None:
        text = raw.rstrip(b"\0")
        if text.startswith(b"{"):
            yield json.loads(text)
        return
    start = 0
    for end in (int(e) for e in index[()]):
        if end <= start:
            break  # index entries past the last record are 0
        yield json.loads(raw[start:end])
        start = end


def compare(theirs: Mapping[str, Node], ours: Mapping[str, Node]) -> list[str]:
    """Every difference as a line: ``+ path`` only ours, ``- path`` only theirs, ``~`` changed.

    ``@name`` is an attribute (or a JSON key of a ``:json`` pseudo-object).
    """
    lines = [f"- {key}" for key in theirs if key not in ours]
    lines += [f"+ {key}" for key in ours if key not in theirs]
    for key in theirs.keys() & ours.keys():
        mine, other = ours[key], theirs[key]
        if mine.kinds != other.kinds:
            lines.append(f"~ {key}: kind {sorted(other.kinds)} -> {sorted(mine.kinds)}")
        for attr in sorted(mine.attrs - other.attrs):
            lines.append(f"+ {key} @{attr}")
        for attr in sorted(other.attrs - mine.attrs):
            lines.append(f"- {key} @{attr}")
        for attr in sorted(mine.attrs & other.attrs):
            mine_types = sorted(t for a, t in mine.attr_types if a == attr)
            their_types = sorted(t for a, t in other.attr_types if a == attr)
            if mine_types != their_types:
                lines.append(f"~ {key} @{attr}: dtype {their_types} -> {mine_types}")
    return sorted(lines)
