"""SWMR batch encoding: the uniform fast path writes exactly what the record-by-record path does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import pytest

from satellites.h5datawriter import swmr_layout
from satellites.h5datawriter.swmr_layout import SwmrSender, batch_nbytes


class Rec(NamedTuple):
    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def _batches() -> dict[str, list[Rec]]:
    payload = [bytes([i % 256]) * 16 for i in range(40)]
    return {
        "no tags": [Rec(s, {}, [payload[s]]) for s in range(1, 30)],
        "same tags": [Rec(s, {"dtype": "uint8", "n": 3}, [payload[s]]) for s in range(8, 30)],
        "changing tags": [Rec(s, {"n": s}, [payload[s]]) for s in range(1, 5)],
        "1 == True": [Rec(1, {"a": 1}, [b"x"]), Rec(2, {"a": True}, [b"y"])],
        "reserved key": [Rec(s, {"sequence": "x"}, [b"ab"]) for s in range(1, 4)],
        "two blocks": [Rec(s, {}, [b"ab", b"c"]) for s in range(1, 4)],
        "lengths differ": [Rec(1, {}, [b"ab"]), Rec(2, {}, [b"abc"])],
        "numpy block": [Rec(1, {}, [np.arange(3, dtype=np.uint16)]), Rec(2, {}, [b"abcdef"])],
        "big sequence": [Rec(s, {}, [b"z"]) for s in (999_999_999, 1_000_000_000, 2**40)],
    }


def _written(path: Path, records: list[Rec], uniform: bool) -> dict[str, np.ndarray]:
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        sender = SwmrSender(f.create_group("s"), {})
        if not uniform:
            sender._encode_uniform = lambda records: None  # type: ignore[method-assign]
        half = len(records) // 2
        sender.append(records[:half] or records)
        if half:
            sender.append(records[half:])
        sender.write_pending()
        return {
            name: sender.group[name][: getattr(sender, name).size]
            for name in ("data", "data_idx", "meta", "meta_idx")
        }


@pytest.mark.parametrize("case", list(_batches()))
def test_fast_path_is_byte_identical(tmp_path: Path, case: str) -> None:
    records = _batches()[case]
    fast = _written(tmp_path / "fast.h5", records, uniform=True)
    slow = _written(tmp_path / "slow.h5", records, uniform=False)
    for name in fast:
        assert fast[name].tobytes() == slow[name].tobytes(), name
    assert int(fast["data_idx"][-1]) == batch_nbytes(records)


def test_fast_path_taken_only_for_uniform_batches(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w", libver=("v110", "latest")) as f:
        sender = SwmrSender(f.create_group("s"), {})
        batches = _batches().items()
        taken = {case: sender._encode_uniform(recs) is not None for case, recs in batches}
    assert taken == {
        "no tags": True,
        "same tags": True,
        "changing tags": False,
        "1 == True": False,
        "reserved key": False,
        "two blocks": False,
        "lengths differ": False,
        "numpy block": False,
        "big sequence": True,
    }


def _stored(sender: SwmrSender) -> list[tuple[int, bytes]]:
    """(sequence, data) of the records in the datasets, decoded from the indices."""
    data_ends = sender.group["data_idx"][: sender.data_idx.size].tolist()
    meta_ends = sender.group["meta_idx"][: sender.meta_idx.size].tolist()
    data = sender.group["data"][: sender.data.size].tobytes()
    meta = sender.group["meta"][: sender.meta.size].tobytes()
    out = []
    for index, (data_end, meta_end) in enumerate(zip(data_ends, meta_ends, strict=True)):
        data_start = data_ends[index - 1] if index else 0
        meta_start = meta_ends[index - 1] if index else 0
        sequence = json.loads(meta[meta_start:meta_end])["sequence"]
        out.append((sequence, data[data_start:data_end]))
    return out


def test_batches_are_held_until_a_megabyte_or_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    original = swmr_layout._write_slice

    def counting(dset: Any, start: int, values: Any) -> None:
        writes.append(dset.name.rsplit("/", 1)[-1])
        original(dset, start, values)

    monkeypatch.setattr(swmr_layout, "_write_slice", counting)
    block = 1024
    per_batch = 128  # 128 KiB of blocks per batch: the eighth batch passes PENDING_BYTES
    records = [
        Rec(s, {} if s % 300 else {"odd": s}, [bytes([s % 256]) * block]) for s in range(1, 1200)
    ]
    batches = [records[i : i + per_batch] for i in range(0, len(records), per_batch)]
    with h5py.File(tmp_path / "f.h5", "w", libver=("v110", "latest")) as f:
        sender = SwmrSender(f.create_group("s"), {})
        for batch in batches[:7]:
            assert sender.append(batch) == (len(batch), len(batch) * block)
        assert writes == [] and sender.pending_records == 7 * per_batch
        sender.append(batches[7])
        assert writes == ["data", "meta", "meta_idx", "data_idx"]
        assert sender.pending_records == 0 and sender.data_idx.size == 8 * per_batch
        for batch in batches[8:]:
            sender.append(batch)
        assert sender.pending_records == len(records) - 8 * per_batch
        sender.flush()
        assert sender.pending_records == 0 and len(writes) == 8
        stored = _stored(sender)
    assert stored == [(r.sequence, r.blocks[0]) for r in records]


def test_record_limit_writes_small_records(tmp_path: Path) -> None:
    records = [Rec(s, {}, [b"x"]) for s in range(1, swmr_layout.PENDING_RECORDS + 1)]
    with h5py.File(tmp_path / "f.h5", "w", libver=("v110", "latest")) as f:
        sender = SwmrSender(f.create_group("s"), {})
        sender.append(records[:-1])
        assert sender.data_idx.size == 0
        sender.append(records[-1:])
        assert sender.pending_records == 0
        assert sender.data_idx.size == len(records)
