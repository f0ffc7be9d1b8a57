"""Attribute conversion (writer side) and un-flattening (reader side)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import h5py
import numpy as np

from constellation.reader import unflatten
from satellites.h5datawriter.attrs import flatten, to_attr_items, to_json_bytes
from satellites.h5datawriter.swmr_meta import MetaEncoder, encode_meta


def test_flatten_and_unflatten_are_inverse() -> None:
    nested = {"a": {"b": {"c": 1}, "d": [1, 2]}, "e": "x"}
    flat = flatten(nested)
    assert flat == {"a.b.c": 1, "a.d": [1, 2], "e": "x"}
    assert unflatten(flat) == nested


def test_unflatten_keeps_clashing_keys_flat() -> None:
    assert unflatten({"a": 1, "a.b": 2, "c.d": 3}) == {"a": 1, "a.b": 2, "c": {"d": 3}}
    assert unflatten({"x..y": 1, ".z": 2}) == {"x..y": 1, ".z": 2}


def test_attr_values() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    items = to_attr_items(
        {"none": None, "t": when, "d": when.date(), "b": True, "l": [True, False], "raw": b"\x00"}
    )
    assert items["none"][()] == "None"
    assert items["t"][()] == when.isoformat() and items["d"][()] == "2026-01-01"
    assert items["b"].dtype == np.bool_ and items["l"].dtype == np.bool_
    assert items["raw"].tobytes() == b"\x00"
    assert h5py.check_string_dtype(items["none"].dtype) is not None


def test_json_and_meta() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert to_json_bytes({"t": when, "n": np.int64(3), "ü": None}) == (
        b'{"t":"2026-01-01T00:00:00+00:00","n":3,"\xc3\xbc":null}'
    )
    assert encode_meta({}, [], 1) == b'{"block_lengths":[],"sequence":1}'
    assert encode_meta({"a": 1}, [3, 4], 2) == b'{"a":1,"block_lengths":[3,4],"sequence":2}'
    clash = encode_meta({"sequence": "user", "x": 1}, [1], 3)
    assert clash == b'{"sequence":3,"x":1,"block_lengths":[1]}'


def test_meta_encoder_reuses_only_identical_tags() -> None:
    encode = MetaEncoder()
    sequence: list[dict[str, Any]] = [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "x"},  # reused prefix
        {"a": True, "b": "x"},  # 1 == True, but JSON differs
        {"a": 1.0, "b": "x"},
        {"a": 1, "b": "y"},
        {"b": "y", "a": 1, "c": None},
        {"a": [1], "b": "y"},
        {"sequence": 5},
        {},
    ]
    for seq, tags in enumerate(sequence, start=1):
        assert encode(tags, [seq], seq) == encode_meta(tags, [seq], seq)
        assert json.loads(encode(tags, [seq], seq)) == {
            **tags,
            "block_lengths": [seq],
            "sequence": seq,
        }
