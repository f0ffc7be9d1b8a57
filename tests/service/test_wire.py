"""The slice bytes built by hand (service/wire.py) equal msgpack's packing of the record maps."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.reader import RawRecord
from constellation.service.wire import pack_records

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_SIZES = st.sampled_from([0, 1, 31, 32, 255, 256, 65_535, 65_536, 70_000])


@st.composite
def _record(draw: st.DrawFn) -> tuple[RawRecord, dict[str, Any]]:
    tags = draw(st.dictionaries(st.text(max_size=8), _JSON, max_size=4))
    count = draw(st.integers(0, 18))  # 16 and more blocks need the longer array header
    blocks = [bytes([n % 256]) * draw(_SIZES) for n in range(count)]
    dtypes = [draw(st.sampled_from(["|u1", "<u2", ">f8"])) for _ in blocks]
    sequence = draw(st.integers(-(1 << 63), (1 << 64) - 1))
    as_text = draw(st.booleans())
    text = json.dumps(tags, separators=(",", ":"), ensure_ascii=False).encode()
    raw = RawRecord(
        sequence,
        None if as_text else tags,
        text if as_text else None,
        [memoryview(block) for block in blocks],
        dtypes,
    )
    return raw, {"sequence": sequence, "tags": tags, "blocks": blocks, "dtypes": dtypes}


@settings(max_examples=150, deadline=None)
@given(st.lists(_record(), max_size=20))
def test_bytes_equal_msgpack(records: list[tuple[RawRecord, dict[str, Any]]]) -> None:
    raw = [r for r, _ in records]
    want = msgpack.packb([m for _, m in records], use_bin_type=True)
    assert pack_records(iter(raw), len(raw)) == want


def test_repeated_tag_texts_and_long_arrays() -> None:
    text = b'{"dtype":"<u2","x":[1,2]}'
    raw = [RawRecord(n, None, text, [memoryview(b"ab")], ["<u2"]) for n in range(70_000)]
    got = msgpack.unpackb(pack_records(raw, len(raw)))
    assert len(got) == 70_000 and got[-1]["sequence"] == 69_999
    assert got[5] == {
        "sequence": 5,
        "tags": {"dtype": "<u2", "x": [1, 2]},
        "blocks": [b"ab"],
        "dtypes": ["<u2"],
    }


def test_count_must_match() -> None:
    raw = [RawRecord(1, {}, None, [], [])]
    with pytest.raises(ValueError, match="1 records packed, 2 announced"):
        pack_records(raw, 2)
