"""ReservedFrame: a one-record DATA frame written in place is byte for byte what the encoder
writes for the same record, whatever the sequence width, tags and block length."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.errors import EncodeError
from constellation.protocol.cdtp2 import CDTPType, DataRecord, decode_data_frame, encode_data_frame
from constellation.protocol.cdtp2_reserved import ReservedFrame
from tests.unit.protocol.strategies import canonical_names, wire_maps

SEQUENCES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
SIZES = [0, 1, 255, 256, 65535, 65536, 1 << 20]
TAGS: list[dict[str, Any]] = [
    {},
    {"dtype": "uint16", "x": 5},
    {"when": datetime(2024, 5, 1, 12, 0, 0)},  # naive: packed as by encode_data_frame
    {"k" * 300: list(range(40)), "nested": {"a": [1.5, 2.5]}},
]


def _filled(frame: ReservedFrame) -> bytes:
    data = np.random.default_rng(frame.nbytes).integers(0, 256, frame.nbytes, dtype=np.uint8)
    frame.block[:] = data.tobytes()
    return data.tobytes()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tags", TAGS, ids=range(len(TAGS)))
def test_frame_equals_the_encoded_record(tags: dict[str, Any], size: int) -> None:
    for sequence in SEQUENCES:
        frame = ReservedFrame("Tx.t1", tags, size)
        block = _filled(frame)
        expected = encode_data_frame("Tx.t1", [DataRecord(sequence, tags, [block])])
        assert bytes(frame.finish(sequence)) == expected


@settings(max_examples=60, deadline=None)
@given(
    sender=canonical_names,
    tags=wire_maps,
    size=st.integers(0, 70_000),
    sequence=st.integers(0, 2**64 - 1),
)
def test_frame_equals_the_encoded_record_for_any_valid_input(
    sender: str, tags: dict[str, Any], size: int, sequence: int
) -> None:
    frame = ReservedFrame(sender, tags, size)
    block = _filled(frame)
    wire = frame.finish(sequence)
    assert bytes(wire) == encode_data_frame(sender, [DataRecord(sequence, tags, [block])])
    message = decode_data_frame(bytes(wire))
    assert message.msg_type is CDTPType.DATA and message.sender == sender
    assert [(r.sequence, bytes(r.blocks[0])) for r in message.records] == [(sequence, block)]


def test_the_block_is_written_in_place_not_copied() -> None:
    frame = ReservedFrame("Tx.t1", {"a": 1}, 1 << 16)
    wire = frame.finish(7)
    frame.block[:4] = b"\x01\x02\x03\x04"  # after finish: the frame shows it (same memory)
    assert bytes(wire[-(1 << 16) :][:4]) == b"\x01\x02\x03\x04"
    assert not frame.block.readonly and frame.block.nbytes == 1 << 16
    assert np.shares_memory(np.frombuffer(wire, np.uint8), np.frombuffer(frame.block, np.uint8))


def test_tags_are_encoded_when_reserved() -> None:
    tags = {"a": 1}
    frame = ReservedFrame("Tx.t1", tags, 3)
    frame.block[:] = b"xyz"
    tags["a"] = 2  # too late: the frame keeps what the map held
    assert decode_data_frame(bytes(frame.finish(1))).records[0].tags == {"a": 1}


@pytest.mark.parametrize(
    ("sender", "tags", "size", "problem"),
    [
        ("Tx.t1", {"k": b"bytes"}, 4, "binary values"),
        ("Tx.t1", {1: "int key"}, 4, "keys must be str"),
        ("Tx.t1", ["not", "a", "map"], 4, "expected a dict"),
        ("Tx.t1", {}, -1, "2\\*\\*32-1 bytes"),
        ("Tx.t1", {}, 2**32, "2\\*\\*32-1 bytes"),
        ("Tx.t1", {}, 1.5, "2\\*\\*32-1 bytes"),
        (b"Tx.t1", {}, 4, "sender must be str"),
    ],
)
def test_what_cannot_travel_is_refused_when_reserved(
    sender: Any, tags: Any, size: Any, problem: str
) -> None:
    with pytest.raises(EncodeError, match=problem):
        ReservedFrame(sender, tags, size)


@pytest.mark.parametrize("sequence", [-1, 2**64, 1.0])
def test_a_sequence_outside_uint64_is_refused(sequence: Any) -> None:
    with pytest.raises(EncodeError, match="uint64"):
        ReservedFrame("Tx.t1", {}, 1).finish(sequence)
