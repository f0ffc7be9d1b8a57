"""SWMR batch encoding: the uniform fast path writes exactly what the record-by-record path does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import pytest

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
