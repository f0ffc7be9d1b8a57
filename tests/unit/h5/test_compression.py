"""Optional compression of block data, readable with plain h5py + hdf5plugin."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from h5py import h5z

from constellation.errors import ConfigError
from constellation.reader import open_run
from satellites.h5datawriter.compression import (
    COMPRESSION_NAMES,
    compression_kwargs,
    single_blosc_thread,
)
from tests.unit.h5.support import Rec, new_run, spec_read_swmr

FILTER_IDS = {
    "blosc2-lz4": hdf5plugin.Blosc2.filter_id,
    "zstd": hdf5plugin.Zstd.filter_id,
    "gzip": h5z.FILTER_DEFLATE,
}


def _filters(dset: h5py.Dataset) -> list[int]:
    dcpl = dset.id.get_create_plist()
    return [dcpl.get_filter(index)[0] for index in range(dcpl.get_nfilters())]


def _records() -> list[Rec]:
    ramp = np.arange(4096, dtype=np.uint16)
    return [Rec(seq, {"dtype": "uint16"}, [(ramp * seq).tobytes(), b""]) for seq in range(1, 9)]


@pytest.mark.parametrize("name", ["blosc2-lz4", "zstd", "gzip"])
@pytest.mark.parametrize("swmr", [False, True])
def test_compressed_round_trip(tmp_path: Path, name: str, swmr: bool) -> None:
    records = _records()
    run = new_run(tmp_path, swmr, ["T.t"], compression=name)
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", records[:3])
    run.write_records("T.t", records[3:])
    run.close()
    with h5py.File(run.path, "r") as h5file:  # plain h5py (hdf5plugin imported above)
        sender = h5file["T.t"]
        if swmr:
            assert _filters(sender["data"]) == [FILTER_IDS[name]]
            assert _filters(sender["data_idx"]) == [] == _filters(sender["meta"])
            decoded = spec_read_swmr(sender)
            raw = [np.frombuffer(blocks[0], np.uint16) for _, blocks in decoded]
        else:
            assert _filters(sender["data_000000002/block_00"]) == [FILTER_IDS[name]]
            assert sender["data_000000002/block_01"].shape == (0,)
            raw = [sender[f"data_{seq:09d}/block_00"][()] for seq in range(1, 9)]
    for seq, values in enumerate(raw, start=1):
        np.testing.assert_array_equal(values, np.arange(4096, dtype=np.uint16) * seq)
    with open_run(run.path) as reader:
        blocks = [record.blocks[0] for record in reader.records("T.t")]
    assert all(b.dtype == np.uint16 for b in blocks) and len(blocks) == 8


def test_compression_names() -> None:
    assert compression_kwargs(None) == {} == compression_kwargs("none") == compression_kwargs("")
    for name in COMPRESSION_NAMES:
        compression_kwargs(name)
    with pytest.raises(ConfigError, match="compression"):
        compression_kwargs("rar")


def test_blosc_threads_are_the_launchers_business(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing a filter leaves the process alone; the writer's launcher sets one thread
    unless the environment says otherwise."""
    monkeypatch.delenv("BLOSC_NTHREADS", raising=False)
    assert compression_kwargs("blosc2-lz4")
    assert "BLOSC_NTHREADS" not in os.environ
    single_blosc_thread()
    assert os.environ["BLOSC_NTHREADS"] == "1"
    monkeypatch.setenv("BLOSC_NTHREADS", "4")
    single_blosc_thread()
    assert os.environ["BLOSC_NTHREADS"] == "4"
