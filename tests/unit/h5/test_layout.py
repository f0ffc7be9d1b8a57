"""Both file layouts checked key by key against docs/file-format.md with plain h5py only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from constellation.errors import ConfigError, OutputFileError
from tests.unit.h5.support import WRITER, Rec, make_records, new_run, spec_read_swmr

SENDER = "RandomTransmitter.t1"
BOR_TAGS = {"block_size": 64, "nested": {"a": 1, "b": {"c": "x"}}, "none": None}
CONFIG = {"_data": {"receive_from": ["A.b"], "bor_timeout": 10.0}, "rate": 0, "flag": True}
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
RUN_META = {
    "run_id": "run1",
    "time_start": T0,
    "time_end": T0 + dt.timedelta(seconds=5),
    "condition": "GOOD",
    "condition_code": 0,
    "data_records": 3,
    "version": "0.1.0",
    "extra": {"list": [1, 2, 3], "none": None},
}


def _write_run(tmp_path: Path, swmr: bool) -> Path:
    run = new_run(tmp_path, swmr, [SENDER])
    run.begin_sender(SENDER, BOR_TAGS, CONFIG)
    run.write_records(SENDER, make_records(1, 3, size=16))
    run.end_sender(SENDER, {"note": "bye"}, RUN_META)
    run.close()
    return run.path


def _writer_group_checks(h5file: h5py.File, swmr: bool) -> h5py.Group:
    """The writer group and the sender group side by side at the file root; returns the sender."""
    assert sorted(h5file) == sorted([WRITER, SENDER])
    assert not dict(h5file.attrs)
    root = h5file[WRITER]
    assert list(root) == [], "nothing is nested inside the writer's group"
    assert set(root.attrs) == {"constellation_version", "date_utc", "swmr_mode"}
    assert root.attrs["constellation_version"] == "0.1.0"
    stamp = dt.datetime.fromisoformat(root.attrs["date_utc"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert bool(root.attrs["swmr_mode"]) is swmr
    return h5file[SENDER]


def _bor_checks(sender: h5py.Group) -> None:
    bor = sender["BOR"]
    assert set(bor) == {"user_tags", "configuration"}
    tags = dict(bor["user_tags"].attrs)
    assert tags == {"block_size": 64, "nested.a": 1, "nested.b.c": "x", "none": "None"}
    config = bor["configuration"].attrs
    assert set(config) == {"_data.receive_from", "_data.bor_timeout", "rate", "flag"}
    assert list(config["_data.receive_from"]) == ["A.b"]
    assert config["_data.bor_timeout"] == 10.0
    assert bool(config["flag"]) is True


def test_normal_layout_matches_spec(tmp_path: Path) -> None:
    path = _write_run(tmp_path, swmr=False)
    assert path.name == "data_run1.h5"
    with h5py.File(path, "r") as h5file:
        sender = _writer_group_checks(h5file, swmr=False)
        assert set(sender) == {"BOR", "EOR", "data_000000001", "data_000000002", "data_000000003"}
        _bor_checks(sender)
        eor = sender["EOR"]
        assert set(eor) == {"user_tags", "run_metadata"}
        assert dict(eor["user_tags"].attrs) == {"note": "bye"}
        meta = eor["run_metadata"].attrs
        assert meta["time_start"] == T0.isoformat()
        assert meta["data_records"] == 3
        assert list(meta["extra.list"]) == [1, 2, 3]
        assert meta["extra.none"] == "None"
        record = sender["data_000000002"]
        assert isinstance(record, h5py.Group)
        assert dict(record.attrs) == {"trigger": 2, "kind": "pulse"}
        assert list(record) == ["block_00"]
        block = record["block_00"]
        assert block.dtype == np.uint8
        assert block[()].tolist() == [2] * 16


def test_normal_blocks_typed_by_dtype_tag(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    values = np.linspace(0, 1, 8, dtype=">f8")
    run.write_records(
        SENDER,
        [
            Rec(7, {"dtype": ">f8"}, [values.tobytes(), b""]),
            Rec(8, {"dtype": "float32"}, [b"abc"]),  # 3 bytes do not fit float32: uint8
            Rec(9, {"dtype": "not-a-dtype"}, [b"xy"]),
        ],
    )
    run.close()
    with h5py.File(run.path, "r") as h5file:
        sender = h5file[SENDER]
        np.testing.assert_array_equal(sender["data_000000007/block_00"][()], values)
        assert sender["data_000000007/block_00"].dtype == np.dtype(">f8")
        assert sender["data_000000007/block_01"].shape == (0,)
        assert sender["data_000000008/block_00"].dtype == np.uint8
        assert sender["data_000000009/block_00"][()].tobytes() == b"xy"
        assert sender["data_000000008"].attrs["dtype"] == "float32"


def test_swmr_layout_matches_spec(tmp_path: Path) -> None:
    path = _write_run(tmp_path, swmr=True)
    with h5py.File(path, "r") as h5file:
        sender = _writer_group_checks(h5file, swmr=True)
        assert set(sender) == {"BOR", "EOR", "data", "data_idx", "meta", "meta_idx"}
        _bor_checks(sender)
        classes = {"data": "DETECTOR_DATA", "data_idx": "INDEX", "meta": "META_DATA"}
        classes["meta_idx"] = "INDEX"
        for name, cls in classes.items():
            dset = sender[name]
            assert dset.ndim == 1 and dset.maxshape == (None,) and dset.chunks is not None
            assert dset.attrs["CLASS"] == cls
        assert sender["data"].dtype == np.uint8 and sender["meta"].dtype == np.uint8
        assert sender["data_idx"].dtype == np.uint64 and sender["meta_idx"].dtype == np.uint64
        data_idx = sender["data_idx"][:]
        assert data_idx[:3].tolist() == [16, 32, 48]
        assert not data_idx[3:].any(), "index entries past the last record must be 0"
        assert not sender["meta_idx"][3:].any()
        records = spec_read_swmr(sender)
        assert [tags["trigger"] for tags, _ in records] == [1, 2, 3]
        assert records[0][0] == {
            "trigger": 1,
            "kind": "pulse",
            "block_lengths": [16],
            "sequence": 1,
        }
        assert records[2][1] == [bytes([3]) * 16]
        eor = sender["EOR"]
        assert eor["user_tags"].dtype == np.uint8
        assert json.loads(eor["user_tags"][()].tobytes()) == {"note": "bye"}
        metadata = json.loads(eor["run_metadata"][()].tobytes())
        assert metadata["time_start"] == T0.isoformat()
        assert metadata["extra"] == {"list": [1, 2, 3], "none": None}


def test_meta_json_is_compact(tmp_path: Path) -> None:
    run = new_run(tmp_path, True, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, [Rec(1, {"a": [1, 2]}, [b"xy", b"z"])])
    run.close()
    with h5py.File(run.path, "r") as h5file:
        sender = h5file[SENDER]
        meta = sender["meta"][: int(sender["meta_idx"][0])].tobytes()
    assert meta == b'{"a":[1,2],"block_lengths":[2,1],"sequence":1}'


def test_swmr_switches_after_every_expected_bor(tmp_path: Path) -> None:
    run = new_run(tmp_path, True, ["A.one", "B.two"])
    run.begin_sender("A.one", {}, {})
    assert not run.swmr_active and run.waiting_for == ("B.two",)
    run.write_records("A.one", make_records(1, 5))  # records before the switch are fine
    run.begin_sender("b.TWO", {}, {})  # names compare case-insensitively
    assert run.swmr_active and run.waiting_for == ()
    with pytest.raises(OutputFileError, match=r"unexpected sender 'C\.three'") as info:
        run.begin_sender("C.three", {}, {})
    assert str(run.path) in str(info.value)
    run.write_records("A.one", make_records(6, 5))
    run.close()
    with h5py.File(run.path, "r") as h5file:
        assert len(spec_read_swmr(h5file["A.one"])) == 10
        assert sorted(h5file) == sorted(["A.one", "b.TWO", WRITER])


def test_swmr_needs_expected_senders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="receive_from"):
        new_run(tmp_path, True, [])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("swmr", [False, True])
def test_misuse_is_reported(tmp_path: Path, swmr: bool) -> None:
    run = new_run(tmp_path, swmr, [SENDER, "Other.x"])
    with pytest.raises(OutputFileError, match="before its BOR"):
        run.write_records(SENDER, make_records(1, 1))
    run.begin_sender(SENDER, {}, {})
    with pytest.raises(OutputFileError, match="second BOR"):
        run.begin_sender(SENDER, {}, {})
    run.end_sender(SENDER, {}, {})
    with pytest.raises(OutputFileError, match="second EOR"):
        run.end_sender(SENDER, {}, {})
    with pytest.raises(ValueError, match="invalid sender"):
        run.begin_sender("a/b", {}, {})
    run.close()
    with pytest.raises(OutputFileError, match="closed"):
        run.write_records(SENDER, make_records(1, 1))


def test_duplicate_sequence_is_named(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, make_records(1, 3))
    with pytest.raises(OutputFileError, match="duplicate sequence number 2"):
        run.write_records(SENDER, make_records(2, 1))
    run.close()


@pytest.mark.parametrize("swmr", [False, True])
def test_sender_named_like_the_writer_is_refused(tmp_path: Path, swmr: bool) -> None:
    """Sender and writer groups share the file root: a clash is an error naming it."""
    run = new_run(tmp_path, swmr, [WRITER.lower(), SENDER])
    with pytest.raises(OutputFileError, match=r"sender 'h5datawriter\.writer' is named like"):
        run.begin_sender(WRITER.lower(), {}, {})
    run.begin_sender(SENDER, {}, {})  # the file is still usable
    run.write_records(SENDER, make_records(1, 2))
    run.close()
    with h5py.File(run.path, "r") as h5file:
        assert sorted(h5file) == sorted([WRITER, SENDER])
        assert set(h5file[WRITER].attrs) == {"constellation_version", "date_utc", "swmr_mode"}
