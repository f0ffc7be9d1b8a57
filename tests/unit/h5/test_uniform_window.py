"""Uniform SWMR windows (constellation.reader.swmr_uniform): same answers as record by record."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from constellation.errors import InputFileError
from constellation.reader import open_run
from constellation.reader.swmr_meta import split_meta
from constellation.reader.swmr_uniform import uniform_window
from satellites.h5datawriter.swmr_meta import encode_meta
from tests.unit.h5.support import Rec, new_run

SENDER = "Sensor.s1"


def _window(metas: list[bytes], sizes: list[int]) -> tuple[bytes, list[int], list[int]]:
    return (
        b"".join(metas),
        [0, *np.cumsum([len(m) for m in metas]).tolist()],
        [0, *np.cumsum(sizes).tolist()],
    )


@pytest.mark.parametrize(
    "sequences",
    [[9, 10, 99, 100, 12345678901], [0, 1, 7], [3, 10**18 - 1, 10**18, 2**64 - 1]],
)
def test_uniform_gives_what_split_meta_gives(sequences: list[int]) -> None:
    tags = {"dtype": "<u2", "run": "r1"}
    metas = [encode_meta(tags, [4, 6], s) for s in sequences]
    found = uniform_window(*_window(metas, [10] * len(sequences)))
    assert found is not None
    assert found.sequences == sequences and found.lengths == [4, 6]
    assert all(split_meta(m).tags_json == found.tags_json for m in metas)


@pytest.mark.parametrize(
    ("metas", "sizes"),
    [
        ([encode_meta({"a": 1}, [4], 1), encode_meta({"a": 2}, [4], 2)], [4, 4]),  # tags differ
        ([encode_meta({}, [4], 1), encode_meta({}, [5], 2)], [4, 5]),  # lengths differ
        ([encode_meta({}, [4], 1), encode_meta({}, [4], 2)], [4, 5]),  # data disagrees
        ([encode_meta({}, [4], 1), b'{"block_lengths":[4],"sequence":02}'], [4, 4]),  # 02
        ([encode_meta({}, [4], 1), b'{"block_lengths":[4],"sequence":2 }'], [4, 4]),
        ([encode_meta({}, [4], 1), b'{"block_lengths":[4],"sequence":}'], [4, 4]),
        ([b'{"dtype":"u1","block_lengths":[4]}'] * 2, [4, 4]),  # no sequence: other writer
        ([encode_meta({}, [4], 1), encode_meta({}, [4], 2) + encode_meta({}, [4], 3)], [4, 4]),
        ([encode_meta({}, [4], 1)], [4]),  # a single record: nothing to share
    ],
)
def test_not_uniform(metas: list[bytes], sizes: list[int]) -> None:
    assert uniform_window(*_window(metas, sizes)) is None


def _uniform_file(directory: Path, count: int, tags: dict) -> Path:
    run = new_run(directory, True, [SENDER])
    run.begin_sender(SENDER, {}, {})
    block = np.arange(24, dtype="<u2").tobytes()
    run.write_records(SENDER, [Rec(s, dict(tags), [block, block[:6]]) for s in range(1, count)])
    run.end_sender(SENDER, {}, {"run_id": "run1"})
    run.close()
    return run.path


@pytest.mark.parametrize("tags", [{"dtype": "<u2"}, {"dtype": "<u2", "cfg": {"a": [1]}}, {}])
def test_reader_on_uniform_file(tmp_path: Path, tags: dict) -> None:
    path = _uniform_file(tmp_path, 2000, tags)
    with h5py.File(path, "r") as h5file:  # the plain-h5py decoding of docs/file-format.md
        group = h5file[SENDER]
        meta, meta_idx = group["meta"][:].tobytes(), group["meta_idx"][:1999].tolist()
        expected = [json.loads(meta[a:b]) for a, b in zip([0, *meta_idx], meta_idx, strict=False)]
        data_idx = group["data_idx"][:1999].tolist()
    assert uniform_window(meta[: meta_idx[-1]], [0, *meta_idx], [0, *data_idx]) is not None
    with open_run(path) as run:
        records = list(run.records(SENDER, 3))
        raw = list(run.raw_records(SENDER, 3))
    assert [r.sequence for r in records] == [r.sequence for r in raw] == list(range(4, 2000))
    for record, stored in zip(records, expected[3:], strict=True):
        assert record.tags == {
            k: v for k, v in stored.items() if k not in ("block_lengths", "sequence")
        }
        assert [b.dtype.str for b in record.blocks] == (["<u2", "<u2"] if tags else ["|u1"] * 2)
        assert record.blocks[0].tobytes() == np.arange(24, dtype="<u2").tobytes()
    records[0].tags["new"] = 1  # records never share tag maps
    assert "new" not in records[1].tags
    if "cfg" in tags:
        records[0].tags["cfg"]["a"].append(2)
        assert records[1].tags["cfg"] == {"a": [1]}
    assert [bytes(b) for b in raw[5].blocks] == [b.tobytes() for b in records[5].blocks]
    assert raw[5].dtypes == [b.dtype.str for b in records[5].blocks]


def test_uniform_window_with_bad_lengths_still_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    metas = [encode_meta({}, [5], s) for s in (1, 2, 3)]
    with h5py.File(path, "w") as h5file:
        h5file.create_group("W.w").attrs["swmr_mode"] = True
        sender = h5file.create_group("T.t")
        sender["data"] = np.zeros(12, np.uint8)
        sender["data_idx"] = np.array([4, 8, 12], np.uint64)
        sender["meta"] = np.frombuffer(b"".join(metas), np.uint8)
        sender["meta_idx"] = np.cumsum([len(m) for m in metas]).astype(np.uint64)
    with open_run(path) as run:
        with pytest.raises(InputFileError, match="block lengths"):
            list(run.raw_records("T.t"))
        with pytest.raises(InputFileError, match="block lengths"):
            list(run.records("T.t"))
