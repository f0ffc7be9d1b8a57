"""SWMR meta JSON split by hand (constellation.reader.swmr_meta) gives what a full parse gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.reader.swmr_meta import MetaParts, TagCache, split_meta
from satellites.h5datawriter.swmr_meta import encode_meta


def _full(text: bytes) -> tuple[int | None, list[int] | None, dict[str, Any]]:
    """The reference: parse everything, then take the writer's keys out."""
    tags = json.loads(text)
    key = next((k for k in ("block_lengths", "frame_lengths") if k in tags), None)
    lengths = tags.pop(key) if key else None
    return tags.pop("sequence", None), lengths, tags


def _tags(parts: MetaParts) -> dict[str, Any]:
    return parts.tags if parts.tags is not None else json.loads(parts.tags_json or b"")


def test_writer_form_is_split_without_a_parse() -> None:
    parts = split_meta(encode_meta({"dtype": "<u2", "n": 3}, [8, 0, 16], 42))
    assert parts == MetaParts(42, [8, 0, 16], b'{"dtype":"<u2","n":3}', None)
    empty = split_meta(encode_meta({}, [], 7))
    assert empty == MetaParts(7, [], b"{}", None)


@pytest.mark.parametrize(
    "text",
    [
        # Constellation's writer: no sequence
        b'{"dtype":"<u2","block_lengths":[4]}',
        # the writer's keys not last (a record tag used a reserved name)
        b'{"sequence":3,"block_lengths":[4],"a":1}',
        # a string value that looks like the tail
        b'{"a":"x,\\"block_lengths\\":[4],\\"sequence\\":3}"}',
        # the tail inside a nested map only
        b'{"a":{"x":1,"block_lengths":[4],"sequence":3}}',
        # the tail twice (duplicate keys): the last one counts, as for json.loads
        b'{"block_lengths":[1],"sequence":1,"block_lengths":[4],"sequence":3}',
        # other tools' key, spaces, leading zeros
        b'{"frame_lengths":[4]}',
        b'{"a": 1, "block_lengths": [4], "sequence": 3}',
        b'{"a":1,"block_lengths":[04],"sequence":3}',
        b'{"a":"sequence","block_lengths":[4],"sequence":3}',
    ],
)
def test_other_forms_are_parsed_in_full(text: bytes) -> None:
    try:
        reference = _full(text)
    except json.JSONDecodeError:
        with pytest.raises(ValueError):
            split_meta(text)
        return
    parts = split_meta(text)
    assert (parts.sequence, parts.lengths, _tags(parts)) == reference


@pytest.mark.parametrize("text", [b"", b"[1,2]", b'{"a":', b"\xff\xfe", b"null"])
def test_bad_meta_raises_value_error(text: bytes) -> None:
    with pytest.raises(ValueError):
        split_meta(text)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=16), _VALUES, max_size=5),
    st.lists(st.integers(0, 1 << 40), max_size=4),
    st.integers(0, 1 << 62),
)
def test_split_equals_full_parse(tags: dict[str, Any], lengths: list[int], sequence: int) -> None:
    text = encode_meta(tags, lengths, sequence)
    parts = split_meta(text)
    assert (parts.sequence, parts.lengths, _tags(parts)) == _full(text)


def test_tag_cache_gives_independent_maps() -> None:
    cache = TagCache()
    flat = b'{"dtype":"<u2","n":1}'
    first, second = cache.tags(flat), cache.tags(flat)
    assert first == second == {"dtype": "<u2", "n": 1} and first is not second
    first["n"] = 99
    assert cache.tags(flat)["n"] == 1
    nested = b'{"list":[1,2],"map":{"a":1}}'
    one, two = cache.tags(nested), cache.tags(nested)
    one["list"].append(3)
    one["map"]["b"] = 2
    assert two == {"list": [1, 2], "map": {"a": 1}}
    assert cache.dtype_name(flat) == "<u2" and cache.dtype_name(b"{}") is None
