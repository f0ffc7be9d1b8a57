"""RunReader.raw_records (the bulk path) gives the records of ``records()``, as stored bytes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from constellation.errors import InputFileError
from constellation.reader import RawRecord, Record, open_run
from tests.unit.h5.support import Rec, new_run

SENDER = "Sensor.s1"


def _records() -> list[Rec]:
    """Typed, untyped and multi-block records; flat, nested and reserved-name tags."""
    records = []
    for seq in range(1, 301):
        big = np.arange(seq, seq + 40_000, dtype="<u2").tobytes()  # 80 kB: several windows
        kind = seq % 5
        if kind == 0:
            records.append(Rec(seq, {"dtype": "<u2", "n": seq}, [big]))
        elif kind == 1:
            records.append(Rec(seq, {"dtype": ">f8"}, [b"x" * 12, b"y" * 16]))  # 12: not typed
        elif kind == 2:
            records.append(Rec(seq, {}, [b"", b"abc"]))
        elif kind == 3:
            records.append(Rec(seq, {"meta": {"a": [1, 2]}, "sequence": 5}, [b"q" * 7]))
        else:
            records.append(Rec(seq, {"dtype": "no-such-type", "t": "ä"}, [b"r" * 9]))
    return records


@pytest.fixture(scope="module", params=["swmr", "normal"])
def run_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    swmr = request.param == "swmr"
    run = new_run(tmp_path_factory.mktemp(request.param), swmr, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, _records())
    run.end_sender(SENDER, {}, {"run_id": "run1"})
    run.close()
    return run.path


def _same(raw: RawRecord, record: Record) -> None:
    assert raw.sequence == record.sequence
    tags = raw.tags if raw.tags is not None else json.loads(raw.tags_json or b"")
    assert tags == record.tags
    assert [bytes(block) for block in raw.blocks] == [b.tobytes() for b in record.blocks]
    assert raw.dtypes == [block.dtype.str for block in record.blocks]


@pytest.mark.parametrize(("start", "stop"), [(0, None), (7, 150), (299, 400), (300, None)])
def test_raw_records_equal_records(run_file: Path, start: int, stop: int | None) -> None:
    with open_run(run_file) as run:
        records = list(run.records(SENDER, start))[: None if stop is None else stop - start]
        raw = list(run.raw_records(SENDER, start, stop))
    assert len(raw) == len(records) == max(0, min(300, stop or 300) - start)
    for got, want in zip(raw, records, strict=True):
        _same(got, want)


def test_swmr_tags_stay_text_in_the_writer_form(run_file: Path) -> None:
    with open_run(run_file) as run:
        raw = list(run.raw_records(SENDER, 0, 5))
        layout = run.layout(SENDER)
    if layout == "normal":
        assert all(r.tags is not None and r.tags_json is None for r in raw)
    else:  # a record tag named "sequence" makes the writer use another form: parsed in full
        assert [r.tags_json is not None for r in raw] == [True, True, False, True, True]
        assert raw[0].tags_json == b'{"dtype":">f8"}' and raw[2].tags is not None


def test_mismatched_block_lengths_raise(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5file:
        h5file.create_group("W.w").attrs["swmr_mode"] = True
        sender = h5file.create_group("T.t")
        meta = b'{"block_lengths":[5],"sequence":1}'
        sender["data"] = np.frombuffer(b"abc", np.uint8)
        sender["data_idx"] = np.array([3], np.uint64)
        sender["meta"] = np.frombuffer(meta, np.uint8)
        sender["meta_idx"] = np.array([len(meta)], np.uint64)
    with open_run(path) as run, pytest.raises(InputFileError, match="block lengths"):
        list(run.raw_records("T.t"))


def test_normal_blocks_not_named_in_order(tmp_path: Path) -> None:
    """Block names with gaps, past 64, or next to other links: listed, sorted by number."""
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as h5file:
        h5file.create_group("W.w").attrs["swmr_mode"] = False
        sender = h5file.create_group("T.t")
        sender.create_group("BOR")
        gaps = sender.create_group("data_000000001")
        for index in (10, 0, 2):
            gaps[f"block_{index:02d}"] = np.full(2, index, np.uint8)
        gaps["notes"] = np.zeros(1, np.uint8)
        many = sender.create_group("data_000000002")
        for index in range(70):
            many[f"block_{index:02d}"] = np.full(1, index, np.uint8)
    with open_run(path) as run:
        first, second = run.records("T.t")
        raw = list(run.raw_records("T.t"))
    assert [b.tolist() for b in first.blocks] == [[0, 0], [2, 2], [10, 10]]
    assert [b.tolist() for b in second.blocks] == [[n] for n in range(70)]
    assert [bytes(b) for b in raw[0].blocks] == [b"\0\0", b"\2\2", b"\n\n"]
