"""Offline decoding: attribute and JSON values as plain Python, and the record type.

Attribute maps come back as plain Python values (numpy scalars -> int/float/bool, arrays ->
lists, strings -> str) with dotted keys un-flattened into nested maps; a key that is also the
prefix of another (``a`` and ``a.b``) keeps the longer keys flat. What the writer converted stays
converted: ``None`` was stored as the string ``"None"`` and is read as ``"None"``; datetimes are
read as ISO 8601 strings. JSON maps (SWMR record tags and EORs) keep their nesting; trailing NUL
bytes (the unused capacity of a pre-sized dataset) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import h5py
import numpy as np
from h5py import h5a, h5t

__all__ = ["RawRecord", "Record", "attr_group", "attrs_dict", "json_map", "read_attrs", "unflatten"]


class Record(NamedTuple):
    """One record: sequence number, tag map, and its blocks as typed numpy arrays."""

    sequence: int
    tags: dict[str, Any]
    blocks: list[np.ndarray]


class RawRecord(NamedTuple):
    """One record as stored, for bulk consumers (:meth:`RunReader.raw_records`).

    Either ``tags`` (a map) or ``tags_json`` (the tags' JSON text, as stored in a SWMR file) is
    set. ``blocks`` are the block bytes (views into a buffer shared by neighbouring records),
    ``dtypes`` the numpy dtype string of each block (``"|u1"`` when untyped).
    """

    sequence: int
    tags: dict[str, Any] | None
    tags_json: bytes | None
    blocks: list[memoryview]
    dtypes: list[str]


def json_map(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in ``raw`` (trailing NULs ignored); None if nothing was written."""
    text = raw.rstrip(b"\0")
    if not text:
        return None
    value = json.loads(text.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def read_attrs(obj: Any) -> dict[str, Any]:
    """All attributes of an object (low-level), converted by :func:`_py`."""
    values = {}
    for index in range(h5a.get_num_attrs(obj)):
        attr = h5a.open(obj, index=index)
        values[attr.name.decode("utf-8", "replace")] = _py(_read_attr(attr))
    return values


def _read_attr(attr: h5a.AttrID) -> Any:
    shape = attr.shape
    if shape is None:
        return None
    dtype = attr.dtype
    array = np.zeros(shape, dtype=dtype)
    attr.read(array, mtype=h5t.py_create(dtype))
    info = h5t.check_string_dtype(dtype)
    if info is not None and info.length is None:  # variable-length strings arrive as bytes
        decoded = [_text(item, info.encoding) for item in array.flat]
        array = np.array(decoded, dtype=object).reshape(array.shape)
    return array[()] if array.ndim == 0 else array


def attr_group(group: h5py.Group, path: str) -> dict[str, Any]:
    obj = group.get(path)
    if not isinstance(obj, h5py.Group):
        return {}
    return unflatten(attrs_dict(obj.attrs))


def attrs_dict(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {name: _py(attrs[name]) for name in attrs}


def _text(item: Any, encoding: str) -> Any:
    return item.decode(encoding, "replace") if isinstance(item, bytes) else item


def _py(value: Any) -> Any:
    """Plain Python value of an attribute as h5py returns it."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.void):
        return value.tobytes()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_py(item) for item in value.tolist()] if value.ndim else _py(value[()])
    if isinstance(value, h5py.Empty):
        return None
    return value


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest dotted keys (``{"a.b": 1}`` → ``{"a": {"b": 1}}``); see the module docstring."""
    leaves = set(flat)
    result: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
        if "" in parts or any(prefix in leaves for prefix in prefixes):
            result[key] = value
            continue
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result
