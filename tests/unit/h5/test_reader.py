"""The reader on files written by other tools (plain h5py), and its end-of-data rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from constellation.errors import InputFileError
from constellation.reader import open_run

Records = list[tuple[dict[str, Any], list[bytes]]]


def _swmr_like(group: h5py.Group, records: Records, spare: int) -> None:
    """Write the SWMR layout with plain h5py, leaving ``spare`` zero index entries."""
    data = b"".join(b"".join(blocks) for _, blocks in records)
    metas = [json.dumps(tags).encode() for tags, _ in records]
    data_ends = np.cumsum([sum(map(len, blocks)) for _, blocks in records])
    meta_ends = np.cumsum([len(m) for m in metas])
    group["data"] = np.frombuffer(data + b"\0" * 7, np.uint8)
    group["meta"] = np.frombuffer(b"".join(metas), np.uint8)
    group["data_idx"] = np.concatenate([data_ends, np.zeros(spare)]).astype(np.uint64)
    group["meta_idx"] = np.concatenate([meta_ends, np.zeros(spare)]).astype(np.uint64)


def test_upstream_style_file(tmp_path: Path) -> None:
    """Senders at the top level, ``frame_lengths`` instead of ``block_lengths``, no sequence."""
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5file:
        h5file.create_group("H5DataWriter.w").attrs["swmr_mode"] = True
        sender = h5file.create_group("Sputnik.s1")
        sender.create_group("BOR/user_tags").attrs["a.b"] = 3
        records = [({"frame_lengths": [2, 1], "dtype": "uint8"}, [b"ab", b"c"])] * 3
        _swmr_like(sender, records, spare=5)
    with open_run(path) as reader:
        assert reader.senders == ["Sputnik.s1"] and reader.mode == "swmr"
        assert reader.bor("Sputnik.s1") == {"user_tags": {"a": {"b": 3}}, "configuration": {}}
        got = list(reader.records("Sputnik.s1"))
        assert [r.sequence for r in got] == [1, 2, 3]
        assert got[0].tags == {"dtype": "uint8"}
        assert [b.tobytes() for b in got[2].blocks] == [b"ab", b"c"]


def test_data_only_index(tmp_path: Path) -> None:
    """Without meta datasets, each record is one block and the first 0 ends the records."""
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as h5file:
        group = h5file.create_group("W.w")
        group.attrs["constellation_version"] = "x"
        sender = group.create_group("T.t")
        sender["data"] = np.arange(10, dtype=np.uint8)
        sender["data_idx"] = np.array([4, 10, 0, 0], dtype=np.uint64)
    with open_run(path) as reader:
        assert reader.record_count("T.t") == 2
        assert [r.blocks[0].tolist() for r in reader.records("T.t")] == [
            [0, 1, 2, 3],
            [4, 5, 6, 7, 8, 9],
        ]


def test_index_past_the_data_is_not_a_record(tmp_path: Path) -> None:
    """Entries pointing beyond the data extent or decreasing end the records."""
    path = tmp_path / "short.h5"
    with h5py.File(path, "w") as h5file:
        sender = h5file.create_group("W.w").create_group("T.t")
        h5file["W.w"].attrs["swmr_mode"] = True
        _swmr_like(sender, [({"block_lengths": [3]}, [b"abc"])] * 4, spare=2)
        data_idx = sender["data_idx"][:]
        data_idx[2] = 1000  # beyond 'data': not yet visible
        sender["data_idx"][:] = data_idx
    with open_run(path) as reader:
        assert reader.record_count("T.t") == 2


def test_inconsistent_lengths_raise(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5file:
        sender = h5file.create_group("W.w").create_group("T.t")
        h5file["W.w"].attrs["swmr_mode"] = True
        _swmr_like(sender, [({"block_lengths": [5]}, [b"abc"])], spare=1)
    with open_run(path) as reader, pytest.raises(InputFileError, match="block lengths"):
        list(reader.records("T.t"))


def test_not_a_writer_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as h5file:
        h5file["x"] = 1
    with pytest.raises(InputFileError, match="no H5DataWriter"):
        open_run(path)
    with pytest.raises(FileNotFoundError):
        open_run(tmp_path / "missing.h5")


def _padded(text: bytes, size: int = 1000) -> np.ndarray:
    return np.frombuffer(text.ljust(size, b"\0"), np.uint8)


def test_nul_padded_swmr_eor(tmp_path: Path) -> None:
    """Constellation pre-sizes the SWMR EOR datasets (1000 bytes): JSON, then NULs."""
    path = tmp_path / "padded.h5"
    with h5py.File(path, "w") as h5file:
        h5file.create_group("H5DataWriter.w").attrs["swmr_mode"] = True
        sender = h5file.create_group("PyRandomTransmitter.t")
        sender.create_group("BOR/user_tags")
        _swmr_like(sender, [({"block_lengths": [1]}, [b"x"])], spare=2)
        eor = sender.create_group("EOR")
        eor["user_tags"] = _padded(b"{}")
        eor["run_metadata"] = _padded(b'{"run_id":"r9","data_records":1}')
    with open_run(path) as reader:
        assert reader.eor("PyRandomTransmitter.t") == {
            "user_tags": {},
            "run_metadata": {"run_id": "r9", "data_records": 1},
        }
        assert reader.run_id == "r9"
    with h5py.File(path, "r+") as h5file:  # an EOR dataset that is not JSON is named
        eor = h5file["PyRandomTransmitter.t/EOR"]
        del eor["run_metadata"]
        eor["run_metadata"] = _padded(b"[1, 2")
    with open_run(path) as reader, pytest.raises(InputFileError) as info:
        reader.eor("PyRandomTransmitter.t")
    assert "/PyRandomTransmitter.t/EOR/run_metadata" in str(info.value)
    assert str(path) in str(info.value)
