"""SWMR files written from uniform batches are byte-identical to those written from records."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.protocol.cdtp2 import DataRecord, decode_data_frame, encode_data_frame
from constellation.protocol.cdtp2_uniform import decode_uniform
from satellites.h5datawriter import libhdf5, swmr_layout, swmr_meta
from satellites.h5datawriter.runfile import RunFile

SENDER = "Tx.one"


def _messages() -> list[list[DataRecord]]:
    """Batches of one run: mostly uniform, some not, one with a reserved tag name."""
    rng = np.random.default_rng(1)
    out: list[list[DataRecord]] = []
    seq = 1
    for count, tags, lengths in (
        (50, {}, [1024]),
        (120, {"dtype": "uint8", "n": 3}, [1024]),
        (7, {"nested": {"a": [1, 2]}}, [10, 0, 33]),
        (40, {"sequence": "mine"}, [16]),  # reserved key: the general meta encoding
        (9000, {}, [130]),  # beyond PENDING_RECORDS with the rest: written mid-run
        (9000, {}, [130]),
        (1, {}, []),
    ):
        out.append(
            [
                DataRecord(s, dict(tags), [rng.bytes(n) for n in lengths])
                for s in range(seq, seq + count)
            ]
        )
        seq += count
    out.append([DataRecord(seq, {}, [b"ab"]), DataRecord(seq + 1, {}, [b"abc"])])  # not uniform
    out.append([DataRecord(s, {}, [b"xy"]) for s in range(seq + 2, seq + 400)])
    out.append([DataRecord(s, {}, [b"q"]) for s in range(65530, 65536)])  # a gap, then in order
    return out


def _write(path: Path, uniform: bool) -> None:
    with RunFile.create(path, "r1", "H5DataWriter.w", swmr=True, expected_senders=[SENDER]) as f:
        f.begin_sender(SENDER, {"bor": 1}, {"c": "x"})
        pending = []
        for records in _messages():
            frame = encode_data_frame(SENDER, records)
            message = decode_uniform(frame) if uniform else None
            if message is None:
                if pending:
                    f.write_uniform(SENDER, pending)
                    pending = []
                f.write_records(SENDER, list(decode_data_frame(frame).records))
            else:
                pending.append(message.batch)
                if len(pending) == 2:  # merged batches, as the disk thread hands them over
                    f.write_uniform(SENDER, pending)
                    pending = []
        if pending:
            f.write_uniform(SENDER, pending)
        f.end_sender(SENDER, {}, {"condition": "GOOD"})


def _datasets(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()].tobytes()

        f.visititems(visit)
    return out


def test_uniform_path_writes_the_same_datasets(tmp_path: Path) -> None:
    assert sum(decode_uniform(encode_data_frame("s", m)) is not None for m in _messages()) >= 6
    _write(tmp_path / "a", uniform=True)
    _write(tmp_path / "b", uniform=False)
    fast, slow = _datasets(tmp_path / "a/data_r1.h5"), _datasets(tmp_path / "b/data_r1.h5")
    assert fast.keys() == slow.keys()
    assert any(name.endswith("/data") for name in fast)
    for name in fast:
        assert fast[name] == slow[name], name
    with h5py.File(tmp_path / "a/data_r1.h5", "r") as f:
        total = sum(len(m) for m in _messages())
        assert int(np.count_nonzero(f[f"{SENDER}/meta_idx"][()])) == total


@pytest.mark.parametrize("pending", [1, 10**9])
def test_counted_at_once_and_written_when_full(
    tmp_path: Path, pending: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swmr_layout, "PENDING_BYTES", pending)
    records = [DataRecord(s, {"k": 1}, [b"abcd"]) for s in range(1, 6)]
    message = decode_uniform(encode_data_frame(SENDER, records))
    assert message is not None
    with RunFile.create(tmp_path, "r3", "W.w", swmr=True, expected_senders=[SENDER]) as f:
        f.begin_sender(SENDER, {}, {})
        f.write_uniform(SENDER, [message.batch])
        assert f.records_written == 5 and f.bytes_written == 20
        sender = f._swmr_senders[SENDER]
        assert sender.pending_records == (0 if pending == 1 else 5)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(1, 2**64 - 1),
        st.sampled_from([9, 99, 10**9 - 1, 10**18 - 2, 10**19 - 1, 2**64 - 5]),
    ),
    st.integers(1, 40),
)
def test_range_meta_is_each_number_formatted(first: int, count: int) -> None:
    count = min(count, 2**64 - first)
    head = b'{"k":"v","block_lengths":[4],"sequence":'
    meta, lengths = swmr_meta.range_meta(head, first, count)
    expected = [head + b"%d}" % s for s in range(first, first + count)]
    assert meta == b"".join(expected)
    assert lengths.tolist() == [len(e) for e in expected]


def test_consecutive_batches_share_one_meta_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches that continue each other's sequence with the same tags are encoded in one
    range_meta call (across a change of digit count too); a gap or new tags starts anew."""
    calls: list[tuple[int, int]] = []
    original = swmr_layout.range_meta

    def counting(head: bytes, first: int, count: int) -> tuple[bytes, np.ndarray]:
        calls.append((first, count))
        return original(head, first, count)

    monkeypatch.setattr(swmr_layout, "range_meta", counting)
    spans = [(990, 997), (997, 1004), (1004, 1011), (1020, 1025), (1025, 1030)]
    tags = [{}, {}, {}, {}, {"t": 1}]
    batches = []
    for (first, end), record_tags in zip(spans, tags, strict=True):
        records = [
            DataRecord(s, dict(record_tags), [bytes([s % 256]) * 8]) for s in range(first, end)
        ]
        message = decode_uniform(encode_data_frame(SENDER, records))
        assert message is not None
        batches.append(message.batch)
    with RunFile.create(tmp_path, "r4", "W.w", swmr=True, expected_senders=[SENDER]) as f:
        f.begin_sender(SENDER, {}, {})
        f.write_uniform(SENDER, batches)
        f.flush()
        sender = f._swmr_senders[SENDER]
        meta = sender.group["meta"][: sender.meta.size].tobytes()
        ends = sender.group["meta_idx"][: sender.meta_idx.size].tolist()
    assert calls == [(990, 21), (1020, 5), (1025, 5)]
    entries = [meta[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    expected = [b'{"block_lengths":[8],"sequence":%d}' % s for s in range(990, 1011)] + [
        b'{"block_lengths":[8],"sequence":%d}' % s for s in range(1020, 1025)
    ]
    expected += [b'{"t":1,"block_lengths":[8],"sequence":%d}' % s for s in range(1025, 1030)]
    assert entries == expected


def test_direct_writes_match_h5py_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ctypes writes of the SWMR datasets store what h5py's own writes store."""
    assert libhdf5.raw() is not None  # h5py's library is reachable here: the direct path runs
    _write(tmp_path / "direct", uniform=True)
    monkeypatch.setattr(libhdf5, "raw", lambda: None)
    _write(tmp_path / "h5py", uniform=True)
    direct = _datasets(tmp_path / "direct/data_r1.h5")
    assert direct == _datasets(tmp_path / "h5py/data_r1.h5")
    assert any(name.endswith("/data") and value for name, value in direct.items())
