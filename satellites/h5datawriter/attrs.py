"""H5DataWriter file-format layer: conversion of tag and metadata maps for HDF5 and JSON.

HDF5 attributes hold flat names and array-like values, so maps are stored as attributes after
:func:`flatten` (nested maps become dotted keys) and :func:`to_attr_value`:

- ``bool``/``int``/``float``/``str`` stay typed (ints outside int64 become uint64, else strings);
- ``None`` becomes the string ``"None"``; datetimes, dates and times become ISO 8601 strings;
- lists and tuples become 1-D arrays (bool, int64, float64 or UTF-8 strings); a list mixing
  other kinds (nested lists, maps) is stored as its compact JSON text;
- bytes-like values become opaque (``numpy.void``) values; anything else its ``str()``.

SWMR mode stores maps as compact UTF-8 JSON instead (:func:`to_json_bytes`), where datetimes
become ISO strings and everything else keeps its JSON type.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

__all__ = ["STR_DTYPE", "flatten", "same_tags", "to_attr_items", "to_attr_value", "to_json_bytes"]

#: Variable-length UTF-8 string dtype: plain h5py reads such attributes back as ``str``.
STR_DTYPE = h5py.string_dtype("utf-8")

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_TIME_TYPES = (_dt.datetime, _dt.date, _dt.time)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested maps into one level with dotted keys (``{"a": {"b": 1}}`` → ``a.b``)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def to_attr_items(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten ``mapping`` and convert every value for storage as an HDF5 attribute."""
    return {name: to_attr_value(value) for name, value in flatten(mapping).items()}


def to_attr_value(value: Any) -> Any:
    """Convert one value to something h5py stores as an attribute (see module docstring)."""
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, int):
        return _int_value(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, str):
        return np.array(value, dtype=STR_DTYPE)
    if value is None:
        return np.array("None", dtype=STR_DTYPE)
    if isinstance(value, _TIME_TYPES):
        return np.array(value.isoformat(), dtype=STR_DTYPE)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.void(bytes(value))
    if isinstance(value, (np.generic, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)):
        return _sequence_value(value)
    return np.array(str(value), dtype=STR_DTYPE)


def _int_value(value: int) -> Any:
    if _INT64_MIN <= value <= _INT64_MAX:
        return np.int64(value)
    if 0 <= value <= _UINT64_MAX:
        return np.uint64(value)
    return np.array(str(value), dtype=STR_DTYPE)


def _sequence_value(items: list[Any] | tuple[Any, ...]) -> Any:
    """Typed 1-D array for a homogeneous list of scalars, JSON text otherwise."""
    values = [_iso(item) for item in items]
    kinds = {_scalar_kind(item) for item in values}
    if not values:
        return np.array([], dtype=np.float64)
    if kinds == {"bool"}:
        return np.array(values, dtype=np.bool_)
    if kinds == {"int"} and all(_INT64_MIN <= v <= _INT64_MAX for v in values):
        return np.array(values, dtype=np.int64)
    if kinds <= {"int", "float"} and "float" in kinds:
        return np.array(values, dtype=np.float64)
    if kinds == {"str"}:
        return np.array(values, dtype=STR_DTYPE)
    return np.array(to_json_bytes(list(items)).decode(), dtype=STR_DTYPE)


def _iso(value: Any) -> Any:
    if value is None:
        return "None"
    return value.isoformat() if isinstance(value, _TIME_TYPES) else value


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"


def _json_default(value: Any) -> Any:
    if isinstance(value, _TIME_TYPES):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``; datetimes as ISO strings, bytes as hex text."""
    return _ENCODER.encode(value).encode("utf-8")


#: Tag value types whose equality means equal encodings (as attributes and as JSON).
_SCALAR_TAG_TYPES = (str, int, float, bool, type(None))


def same_tags(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True if ``new`` has the keys of ``old`` in the same order, with equal scalar values of
    the same types: ``new`` then encodes exactly like ``old`` (attributes and tag JSON)."""
    if len(old) != len(new) or list(old) != list(new):
        return False
    for key, value in new.items():
        previous = old[key]
        if previous is value:
            continue
        if type(previous) is not type(value) or not isinstance(value, _SCALAR_TAG_TYPES):
            return False
        if previous != value:
            return False
    return True
