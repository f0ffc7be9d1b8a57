"""H5DataWriter file layer: a record as the normal layout sees it (pure, no HDF5 calls).

:func:`prepare` turns a record into its attribute names and values and its typed blocks, plus
the *shape key* that decides whether two records can share one template (same tag names and
attribute types, same block dtypes and lengths). :func:`uniform_columns` recognises a batch
whose later records repeat the first one's tags and block lengths, and hands their blocks over
as one 2-D array per block position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from satellites.h5datawriter.attrs import flatten, same_tags, to_attr_value

__all__ = [
    "Prepared",
    "RecordLike",
    "attr_array",
    "prepare",
    "record_name",
    "same_value",
    "uniform_columns",
]

_UINT8 = np.dtype(np.uint8)
_SCALAR_SIGNATURES = {str: "str", float: "float", bool: "bool"}


class RecordLike(Protocol):
    """What the writer needs of a record (e.g. ``constellation.protocol.cdtp2.DataRecord``)."""

    @property
    def sequence(self) -> int: ...

    @property
    def tags(self) -> Mapping[str, Any]: ...

    @property
    def blocks(self) -> Sequence[Any]: ...


def record_name(sequence: int) -> bytes:
    """Group name of a record: ``data_`` and the sequence number, 9 digits zero-padded."""
    return b"data_%09d" % sequence


class Prepared(NamedTuple):
    """One record ready for HDF5: tag names and values, typed blocks, and its shape key."""

    names: list[str]
    values: list[Any]
    blocks: list[np.ndarray]
    key: tuple[Any, ...]
    nbytes: int


def prepare(record: RecordLike, block_dtype: Callable[[Any], np.dtype[Any] | None]) -> Prepared:
    """The record's flattened tags and its blocks typed by its ``dtype`` tag (uint8 if absent
    or unusable: ``block_dtype`` returns None)."""
    tags = record.tags
    if tags and any(isinstance(value, Mapping) for value in tags.values()):
        tags = flatten(tags)
    names = [str(name) for name in tags]
    values = list(tags.values())
    dtype = _UINT8 if "dtype" not in tags else block_dtype(tags["dtype"])
    blocks = [_typed_block(block, dtype) for block in record.blocks]
    key = (
        tuple(zip(names, map(_signature, values), strict=True)),
        tuple((arr.dtype.str, arr.shape) for arr in blocks),
    )
    return Prepared(names, values, blocks, key, sum(arr.nbytes for arr in blocks))


def uniform_columns(first: RecordLike, rest: Sequence[RecordLike]) -> list[np.ndarray] | None:
    """One ``(len(rest), length)`` uint8 array per block position if every record of ``rest``
    has ``first``'s tags (equal scalar values of the same types) and as many ``bytes`` blocks
    of the same lengths; else None."""
    if not rest or any(isinstance(value, Mapping) for value in first.tags.values()):
        return None
    lengths = [len(block) if type(block) is bytes else -1 for block in first.blocks]
    if -1 in lengths:
        return None
    count = len(lengths)
    for record in rest:
        blocks = record.blocks
        if len(blocks) != count or any(
            type(block) is not bytes or len(block) != length
            for block, length in zip(blocks, lengths, strict=True)
        ):
            return None
    tags = first.tags
    if tags:
        if not all(same_tags(tags, r.tags) for r in rest):
            return None
    elif any(r.tags for r in rest):
        return None
    return [
        np.frombuffer(b"".join(r.blocks[k] for r in rest), dtype=np.uint8).reshape(len(rest), n)
        for k, n in enumerate(lengths)
    ]


def _typed_block(block: Any, dtype: np.dtype[Any] | None) -> np.ndarray:
    """View a bytes-like block as a 1-D array of ``dtype`` (uint8 when it does not fit)."""
    raw = np.frombuffer(block, dtype=np.uint8) if not isinstance(block, np.ndarray) else block
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raw = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if dtype is None or dtype == _UINT8 or raw.nbytes % dtype.itemsize:
        return raw
    return raw.view(dtype)


def _signature(value: Any) -> Any:
    """What decides a tag's attribute type and shape (cheap for the common scalar types)."""
    kind = type(value)
    signature = _SCALAR_SIGNATURES.get(kind)
    if signature is not None:
        return signature
    if kind is int and -(2**63) <= value < 2**63:
        return "int"
    array = attr_array(value)
    return (array.dtype.str, array.dtype.hasobject, array.shape)


def attr_array(value: Any) -> np.ndarray:
    """A tag value as the array stored in its attribute."""
    return np.asarray(to_attr_value(value))


def same_value(old: Any, new: Any) -> bool:
    """True if a tag value is unchanged (so its attribute needs no rewrite)."""
    if old is new:
        return True
    if type(old) is not type(new) or isinstance(new, np.ndarray):
        return False
    try:
        return bool(old == new)
    except (TypeError, ValueError):
        return False
