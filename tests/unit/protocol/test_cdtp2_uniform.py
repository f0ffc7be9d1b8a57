"""The uniform-batch fast path agrees with the general CDTP2 decoder (or declines)."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.protocol.cdtp2 import (
    CDTPType,
    DataRecord,
    decode_data_frame,
    encode_data_frame,
    make_bor,
)
from constellation.protocol.cdtp2_uniform import UniformMessage, decode_uniform

BOUNDARIES = [1, 100, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
tag_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.integers(0, 9), max_size=3),
)
tag_maps = st.dictionaries(st.text(min_size=1, max_size=6), tag_values, max_size=3)


def _check(frame: bytes) -> UniformMessage | None:
    """decode_uniform is None or equals the general decoding in every field."""
    general = decode_data_frame(frame)
    fast = decode_uniform(frame)
    if fast is not None:
        assert general.msg_type is CDTPType.DATA
        assert fast.sender == general.sender
        assert fast.batch.records() == list(general.records)
        assert list(fast.records) == list(general.records)
        assert len(fast.records) == len(general.records)
        assert fast.records[0] == general.records[0]
        assert fast.records[-1] == general.records[-1]
        batch = fast.batch
        expected = b"".join(b for r in general.records for b in r.blocks)
        assert batch.block_data().tobytes() == expected
        assert batch.nbytes == len(expected)
    return fast


@st.composite
def uniform_batches(draw: st.DrawFn) -> list[DataRecord]:
    count = draw(st.integers(1, 40))
    top = 2**64 - count
    first = draw(st.one_of(st.integers(1, top), st.sampled_from(BOUNDARIES).map(lambda b: b)))
    first = max(1, min(first - draw(st.integers(0, count)), top))
    lengths = draw(st.lists(st.integers(0, 300), max_size=3))
    tags = draw(tag_maps)
    data = draw(st.binary(min_size=1, max_size=64))
    return [
        DataRecord(
            first + i,
            dict(tags),
            [(data * (n // len(data) + 1))[:n] for n in lengths],
        )
        for i in range(count)
    ]


@settings(max_examples=300, deadline=None)
@given(uniform_batches())
def test_uniform_batches_decode_like_msgpack(records: list[DataRecord]) -> None:
    frame = encode_data_frame("Tx.one", records)
    fast = _check(frame)
    widths = {len(msgpack.packb(r.sequence)) for r in records}
    if len(widths) == 1:  # one integer width: the fast path must take it
        assert fast is not None
        assert fast.batch.first_seq == records[0].sequence
        assert fast.batch.count == len(records)
    else:  # crossing a width boundary changes the stride
        assert fast is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 300),
            st.sampled_from([{}, {"a": 1}, {"a": 2}, {"b": "x"}]),
            st.lists(st.binary(max_size=5), max_size=3),
        ),
        max_size=12,
    )
)
def test_non_uniform_batches_never_decode_wrongly(raw: list[tuple[int, dict, list]]) -> None:
    _check(encode_data_frame("s", [DataRecord(*r) for r in raw]))


@settings(max_examples=200, deadline=None)
@given(uniform_batches(), st.data())
def test_one_changed_byte_is_never_misread(records: list[DataRecord], data: st.DataObject) -> None:
    frame = bytearray(encode_data_frame("s", records))
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] = data.draw(st.integers(0, 255))
    try:
        decode_data_frame(bytes(frame))
    except Exception:  # the general decoder refuses it: so must the fast path
        assert decode_uniform(bytes(frame)) is None
        return
    _check(bytes(frame))


@pytest.mark.parametrize("boundary", [127, 255, 65535, 2**32 - 1])
def test_width_boundaries(boundary: int) -> None:
    below = [DataRecord(s, {}, [b"ab"]) for s in range(boundary - 2, boundary + 1)]
    across = [DataRecord(s, {}, [b"ab"]) for s in range(boundary - 1, boundary + 2)]
    batch = _check(encode_data_frame("s", below))
    assert batch is not None and batch.batch.first_seq == boundary - 2
    assert _check(encode_data_frame("s", across)) is None


def test_wrapping_sequence_numbers_of_fixed_width_are_refused() -> None:
    """A non-minimal encoder: uint16 numbers 65535, 0, 1 differ by 1 modulo 2**16."""
    prefix = encode_data_frame("s", [])[:-1]  # without the empty record array
    tail = b"".join(
        b"\x93\xcd" + struct.pack(">H", s) + b"\x80\x91\xc4\x01x" for s in (65535, 0, 1)
    )
    forged = prefix + b"\x93" + tail
    assert [r.sequence for r in decode_data_frame(forged).records] == [65535, 0, 1]
    assert decode_uniform(forged) is None


def test_declines_empty_other_types_and_bad_frames() -> None:
    assert decode_uniform(encode_data_frame("s", [])) is None
    assert decode_uniform(make_bor("s", {}, {}).encode()[0]) is None
    assert decode_uniform(b"") is None
    assert decode_uniform(b"\xc1garbage") is None
    frame = encode_data_frame("s", [DataRecord(1, {}, [b"abc"]), DataRecord(2, {}, [b"abc"])])
    assert decode_uniform(frame[:-1]) is None
    assert decode_uniform(frame + b"\x00") is None
    assert decode_uniform(encode_data_frame("s", [DataRecord(0, {}, [])])) is not None


def test_blocks_are_views_of_the_frame() -> None:
    records = [DataRecord(s, {"k": "v"}, [bytes([s]) * 8, b"tail"]) for s in range(1, 6)]
    frame = encode_data_frame("s", records)
    message = decode_uniform(frame)
    assert message is not None
    batch = message.batch
    assert batch.block_lengths == (8, 4)
    assert batch.tags == {"k": "v"}
    assert batch.blocks[0].shape == (5, 8) and not batch.blocks[0].flags.writeable
    assert batch.blocks[0].base is not None  # a view, not a copy
    assert batch.blocks[0][2].tobytes() == bytes([3]) * 8
    first = message.records[0]
    first.tags["k"] = "changed"  # records own their tag maps
    assert batch.tags == {"k": "v"}
