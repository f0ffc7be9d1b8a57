"""Write with RunFile, read back with constellation.reader: both layouts, dtypes, senders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from constellation.reader import Record, open_run
from satellites.h5datawriter import normal_layout
from tests.unit.h5.support import Rec, make_records, new_run

DTYPES = ["uint8", "int16", "<u4", ">i8", "float32", ">f8", "complex64", "bool"]
SENDERS = ["Cam.a", "Cam.b", "Scope.c"]


def _typed_records(start: int, count: int) -> list[Rec]:
    """Records cycling through dtypes, with two or three blocks of varying length."""
    records = []
    for seq in range(start, start + count):
        dtype = np.dtype(DTYPES[seq % len(DTYPES)])
        first = (np.arange(seq % 5 + 1) * 3).astype(dtype)
        second = np.full(4, seq % 2, dtype=dtype)
        blocks: list[Any] = [first.tobytes(), memoryview(second.tobytes())]
        if seq % 3 == 0:
            blocks.append(np.arange(3).astype(dtype))  # numpy arrays are accepted as blocks
        tags = {"dtype": dtype.str, "seq": seq, "info": {"even": seq % 2 == 0, "name": "x"}}
        records.append(Rec(seq, tags, blocks))
    return records


def _check(record: Record, expected: Rec) -> None:
    assert record.sequence == expected.sequence
    assert record.tags == expected.tags
    dtype = np.dtype(expected.tags["dtype"])
    assert len(record.blocks) == len(expected.blocks)
    for block, raw in zip(record.blocks, expected.blocks, strict=True):
        assert block.dtype == dtype
        np.testing.assert_array_equal(block, np.frombuffer(bytes(raw), dtype=dtype))


@pytest.mark.parametrize("swmr", [False, True])
def test_round_trip_many_dtypes_blocks_senders(tmp_path: Path, swmr: bool) -> None:
    run = new_run(tmp_path, swmr, SENDERS)
    written: dict[str, list[Rec]] = {}
    for index, sender in enumerate(SENDERS):
        run.begin_sender(sender, {"index": index}, {"conf": {"depth": index}})
        written[sender] = _typed_records(1, 40 + index)
    for sender, records in written.items():  # interleaved batches of all senders
        for first in range(0, len(records), 16):
            run.write_records(sender, records[first : first + 16])
    for sender in SENDERS:
        run.end_sender(sender, {"bye": sender}, {"run_id": "run1", "condition": "GOOD"})
    run.close()
    assert run.records_written == sum(len(r) for r in written.values())

    with open_run(run.path) as reader:
        assert reader.mode == ("swmr" if swmr else "normal")
        assert reader.writers == ["H5DataWriter.writer"]
        assert sorted(reader.senders) == sorted(SENDERS)
        assert reader.run_id == "run1" and reader.runs == ["run1"]
        for index, sender in enumerate(SENDERS):
            assert reader.bor(sender) == {
                "user_tags": {"index": index},
                "configuration": {"conf": {"depth": index}},
            }
            assert reader.eor(sender) == {
                "user_tags": {"bye": sender},
                "run_metadata": {"run_id": "run1", "condition": "GOOD"},
            }
            assert reader.record_count(sender) == len(written[sender])
            assert reader.record_count(sender.upper()) == len(written[sender])  # any case
            got = list(reader.records(sender))
            for record, expected in zip(got, written[sender], strict=True):
                _check(record, expected)
            tail = list(reader.records(sender, start=len(written[sender]) - 2))
            assert [r.sequence for r in tail] == [r.sequence for r in written[sender][-2:]]


@pytest.mark.parametrize("swmr", [False, True])
def test_round_trip_value_conversions(tmp_path: Path, swmr: bool) -> None:
    when = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    bor = {
        "none": None,
        "when": when,
        "ints": [1, 2, 3],
        "floats": [1.5, 2],
        "words": ["a", "b"],
        "empty": [],
        "mixed": [1, "a", {"k": 1}],
        "big": 2**64 - 1,
        "huge": 2**70,
        "deep": {"x": {"y": {"z": 1}}},
    }
    run = new_run(tmp_path, swmr, ["T.t"])
    run.begin_sender("T.t", bor, {})
    run.write_records("T.t", [Rec(1, {"when": when, "none": None, "deep": {"k": [1, 2]}}, [b"a"])])
    run.end_sender("T.t", {}, {"time_end": when, "nested": {"a": None}})
    run.close()
    with open_run(run.path) as reader:
        tags = reader.bor("T.t")["user_tags"]
        assert tags["none"] == "None"  # documented: None is stored as the string "None"
        assert tags["when"] == when.isoformat()
        assert tags["ints"] == [1, 2, 3] and tags["floats"] == [1.5, 2.0]
        assert tags["words"] == ["a", "b"] and tags["empty"] == []
        assert tags["mixed"] == '[1,"a",{"k":1}]'
        assert tags["big"] == 2**64 - 1 and tags["huge"] == str(2**70)
        assert tags["deep"] == {"x": {"y": {"z": 1}}}
        record = next(reader.records("T.t"))
        assert record.tags["when"] == when.isoformat()
        assert record.tags["deep"] == {"k": [1, 2]}
        eor = reader.eor("T.t")
        assert eor is not None
        assert eor["run_metadata"]["time_end"] == when.isoformat()


def test_normal_layout_template_paths(tmp_path: Path) -> None:
    """Shapes seen once, repeated shapes (template copies), tag changes and large records."""
    big = normal_layout.TEMPLATE_LIMIT + 1
    records = [
        Rec(1, {"a": 1}, [b"x" * 10]),
        Rec(2, {"a": 2}, [b"y" * 10]),  # second of its shape: builds a template
        Rec(3, {"a": 3}, [b"z" * 10]),  # template copy, changed tag
        Rec(4, {"a": 3}, [b"w" * 10]),  # unchanged tag
        Rec(5, {"a": "text"}, [b"v" * 10]),  # same name, other type: new shape
        Rec(6, {"a": 4}, [b"u" * 11]),  # other block length: new shape
        Rec(7, {"a": 5}, [b"b" * big]),
        Rec(8, {"a": 6}, [b"c" * big]),  # large records never use templates
        Rec(9, {"a": 7, "b": None}, [b"t" * 10]),
        Rec(10, {"a": 8, "b": None}, [b"s" * 10]),
        Rec(11, {"a": 9, "b": None}, [b"r" * 10]),
    ]
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", records)
    run.close()
    with open_run(run.path) as reader:
        for record, expected in zip(reader.records("T.t"), records, strict=True):
            assert record.sequence == expected.sequence
            expected_tags = {k: ("None" if v is None else v) for k, v in expected.tags.items()}
            assert record.tags == expected_tags
            assert record.blocks[0].tobytes() == expected.blocks[0]


def test_template_cache_is_bounded(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    records = [Rec(seq, {}, [b"q" * (1 + (seq // 2) % 40)]) for seq in range(1, 200)]
    run.write_records("T.t", records)
    run.close()
    with open_run(run.path) as reader:
        got = [r.blocks[0].tobytes() for r in reader.records("T.t")]
    assert got == [r.blocks[0] for r in records]


def test_reader_counts_and_empty_records(tmp_path: Path) -> None:
    """SWMR files whose first records are empty (data_idx 0) still count correctly."""
    run = new_run(tmp_path, True, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", [Rec(1, {}, []), Rec(2, {}, [b""]), Rec(3, {}, [b"abc"])])
    run.write_records("T.t", make_records(4, 3, size=2))
    run.close()
    with open_run(run.path) as reader:
        assert reader.record_count("T.t") == 6
        records = list(reader.records("T.t"))
        assert [len(r.blocks) for r in records[:3]] == [0, 1, 1]
        stats = reader.stats("T.t")
        assert (stats.records, stats.first_sequence, stats.last_sequence) == (6, 1, 6)
        assert stats.data_bytes == 3 + 3 * 2
