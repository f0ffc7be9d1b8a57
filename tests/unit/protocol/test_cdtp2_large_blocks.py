"""CDTP2 with large blocks: the join path of the encoder and the zero-copy (shared) decoder.

Blocks of 64 KiB and more are joined into the frame instead of being copied through the packer,
and ``decode_data_frame(..., share_blocks=True)`` returns them as views of the frame. Both must
be invisible on the wire: the frame is byte for byte what msgpack makes, and the decoded records
equal those of the standard decoder (errors included).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.errors import DecodeError
from constellation.protocol.cdtp2 import DataRecord, decode_data_frame, encode_data_frame

__all__: list[str] = []

BIG = 64 * 1024


def _oracle(sender: str, records: list[tuple[int, dict[str, Any], list[Any]]]) -> bytes:
    """The frame msgpack makes from plain values (blocks turned into bytes first)."""
    plain = [
        [
            seq,
            tags,
            [
                bytes(memoryview(b).cast("B"))
                if not isinstance(b, np.ndarray)
                else np.ascontiguousarray(b).tobytes()
                for b in blocks
            ],
        ]
        for seq, tags, blocks in records
    ]
    pieces = ("CDTP\x02", sender, 0, plain)
    return b"".join(msgpack.packb(p, use_bin_type=True, datetime=True) for p in pieces)


def _plain(records: Any) -> list[tuple[int, dict[str, Any], list[bytes]]]:
    return [(r.sequence, r.tags, [bytes(b) for b in r.blocks]) for r in records]


def _mixed_records() -> list[tuple[int, dict[str, Any], list[Any]]]:
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, 200_000, dtype=np.uint8)
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    return [
        (1, {"a": 1, "t": stamp, "nested": {"x": [1, 2, 3], "y": 2.5}}, [big.tobytes(), b"small"]),
        (2, {}, [memoryview(big.data)[1 : BIG + 1], bytearray(b"x" * BIG), b""]),
        (2**40, {"dtype": "uint16"}, [np.arange(BIG, dtype=np.uint16)]),  # 128 KiB array
        (7, {"k": None}, [np.arange(3 * BIG, dtype=np.uint8)[::3]]),  # not contiguous
        (8, {}, [b"y" * (BIG - 1)]),  # just below the threshold
        (9, {}, []),
    ]


def test_join_path_is_byte_identical_to_msgpack() -> None:
    records = _mixed_records()
    frame = encode_data_frame("Tx.t1", [DataRecord(*r) for r in records])
    assert frame == _oracle("Tx.t1", records)


def test_shared_decode_equals_standard_decode() -> None:
    frame = encode_data_frame("Tx.t1", [DataRecord(*r) for r in _mixed_records()])
    standard = decode_data_frame(frame)
    shared = decode_data_frame(memoryview(frame), share_blocks=True)
    assert (shared.sender, shared.msg_type) == (standard.sender, standard.msg_type)
    assert _plain(shared.records) == _plain(standard.records)
    kinds = [[type(b).__name__ for b in r.blocks] for r in shared.records]
    assert kinds == [
        ["memoryview", "bytes"],
        ["memoryview", "memoryview", "bytes"],
        ["memoryview"],
        ["memoryview"],
        ["bytes"],
        [],
    ]
    assert all(b.readonly for r in shared.records for b in r.blocks if isinstance(b, memoryview))


def test_frames_of_small_records_decode_as_usual() -> None:
    records = [DataRecord(i, {"i": i}, [b"z" * 64]) for i in range(1, 3000)]
    frame = encode_data_frame("Tx.t1", records)
    decoded = decode_data_frame(frame, share_blocks=True)
    assert all(type(b) is bytes for r in decoded.records for b in r.blocks)
    assert _plain(decoded.records) == _plain(records)


def _errors(frame: bytes) -> tuple[str, str]:
    messages = []
    for share in (False, True):
        with pytest.raises(DecodeError) as info:
            decode_data_frame(frame, share_blocks=share)
        messages.append(str(info.value))
    return messages[0], messages[1]


def test_malformed_large_frames_fail_like_the_standard_decoder() -> None:
    frame = encode_data_frame("Tx.t1", [DataRecord(1, {}, [b"q" * 100_000])])
    head = b"".join(msgpack.packb(p) for p in ("CDTP\x02", "Tx.t1", 0))
    str_block = head + msgpack.packb([[1, {}, ["s" * 100_000]]], use_bin_type=True)
    signed_seq = head + msgpack.packb([[-1, {}, [b"q" * 100_000]]], use_bin_type=True)
    bin_key = head + msgpack.packb([[1, {b"k": 1}, [b"q" * 100_000]]], use_bin_type=True)
    for bad in (
        frame[:-1],
        frame + b"\x00",
        frame[:5000],
        str_block,
        signed_seq,
        bin_key,
        frame[:14] + b"\xc1" + frame[15:],
    ):
        standard, shared = _errors(bad)
        assert standard == shared


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1),
            st.dictionaries(
                st.text(max_size=5), st.integers(-5, 5) | st.text(max_size=5), max_size=3
            ),
            st.lists(st.sampled_from([0, 1, 255, BIG - 1, BIG, BIG + 1, 300_000]), max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 255),
)
def test_round_trip_with_large_blocks(spec: list[Any], fill: int) -> None:
    records = [(seq, tags, [bytes([fill]) * size for size in sizes]) for seq, tags, sizes in spec]
    frame = encode_data_frame("A.b", [DataRecord(*r) for r in records])
    assert frame == _oracle("A.b", records)
    for share in (False, True):
        decoded = decode_data_frame(frame, share_blocks=share)
        assert _plain(decoded.records) == [(s, t, b) for s, t, b in records]
