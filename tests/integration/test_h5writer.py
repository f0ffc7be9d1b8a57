"""H5DataWriter as a satellite: runs persisted end to end, both layouts, and its failure modes."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from constellation.reader import open_run
from controller import Controller
from satellites.h5datawriter import swmr_layout
from satellites.h5datawriter.satellite import H5DataWriter
from satellites.random_transmitter import RandomTransmitter
from tests.helpers import LOOPBACK, TX, WRITER, cycle_to_run, wait_for, writer_run_config


def _config(out: Path, swmr: bool, rate: float = 2000, **writer: Any) -> dict[str, Any]:
    return writer_run_config(out, swmr, rate=rate, block_size=256, seed=3, **writer)


def _cycle_to_run(ctl: Controller, config: dict[str, Any], run_id: str) -> None:
    ctl.await_satellites([TX, WRITER], timeout=20)
    cycle_to_run(ctl, config, run_id)


@pytest.mark.parametrize("swmr", [False, True], ids=["normal", "swmr"])
def test_run_is_persisted(satellites: Any, group: str, tmp_path: Path, swmr: bool) -> None:
    local_writer = satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    with Controller(group, interface=LOOPBACK) as ctl:
        _cycle_to_run(ctl, _config(tmp_path, swmr), "run_1")
        writer = ctl.satellites[WRITER]
        wait_for(lambda: writer.command("get_current_filename").verb.endswith("data_run_1.h5"))
        # the source of its RECORDS_WRITTEN metric (in-process: no 5 s metric interval)
        wait_for(lambda: local_writer._records_written() > 100, 20, what="100 records written")
        ctl.stop()
        ctl.await_state("ORBIT", 20)
        status = writer.command("get_status").verb
        ctl.land()
        ctl.await_state("INIT", 10)
    path = tmp_path / "data_run_1.h5"
    assert path.exists() and "records written" in status
    with open_run(path) as run:
        assert run.mode == ("swmr" if swmr else "normal")
        assert run.senders == [TX]
        eor = run.eor(TX)
        assert eor is not None and eor["run_metadata"]["condition"] == "GOOD"
        count = run.record_count(TX)
        assert count == eor["run_metadata"]["data_records"] > 100
        assert run.bor(TX)["configuration"]["block_size"] == 256
        sequences = [record.sequence for record in run.records(TX)]
        assert sequences == list(range(1, count + 1))
        first = next(iter(run.records(TX)))
        assert first.blocks[0].dtype == np.uint8 and first.blocks[0].size == 256


def test_existing_file_is_never_overwritten(satellites: Any, group: str, tmp_path: Path) -> None:
    existing = tmp_path / "data_dup.h5"
    existing.write_bytes(b"precious")
    satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    config = _config(tmp_path, False)
    config["H5DataWriter"]["w"]["_autonomy"] = {"role": "NONE"}  # keep the transmitter in ORBIT
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        ctl.initialize(config)
        ctl.await_state("INIT", 10)
        ctl.launch()
        ctl.await_state("ORBIT", 10)
        ctl.start("dup", targets=[WRITER])
        wait_for(
            lambda: (
                ctl.states.get(WRITER) == "ERROR"
                or ctl.satellites[WRITER].command("get_state").verb == "ERROR"
            )
        )
        status = ctl.satellites[WRITER].command("get_status").verb
        assert "data_dup.h5" in status
        assert existing.read_bytes() == b"precious"
        # rename mode writes next to it instead
        ctl.initialize(_config(tmp_path, False, file_conflict="rename"), targets=[WRITER])
        ctl.await_state("INIT", 10, targets=[WRITER])
        ctl.launch(targets=[WRITER])
        ctl.await_state("ORBIT", 10)
        ctl.start("dup")
        ctl.await_state("RUN", 15)
        renamed = ctl.satellites[WRITER].command("get_current_filename").verb
        ctl.stop()
        ctl.await_state("ORBIT", 20)
    assert renamed != str(existing) and Path(renamed).exists()
    assert existing.read_bytes() == b"precious"


def test_write_error_goes_to_error_and_keeps_earlier_records(
    satellites: Any, group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = swmr_layout._write_slice

    def failing(dset: Any, start: int, values: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 20:  # four datasets per batch: fail after about 5 batches
            raise OSError(errno.ENOSPC, "No space left on device")
        original(dset, start, values)

    monkeypatch.setattr(swmr_layout, "_write_slice", failing)
    satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    with Controller(group, interface=LOOPBACK) as ctl:
        config = _config(tmp_path, True)
        config["RandomTransmitter"]["tx"]["_autonomy"] = {"role": "NONE"}
        _cycle_to_run(ctl, config, "full")
        writer = ctl.satellites[WRITER]
        wait_for(lambda: writer.command("get_state").verb == "ERROR", 20, what="writer ERROR")
        status = writer.command("get_status").verb
    assert "data_full.h5" in status and "No space left" in status
    with open_run(tmp_path / "data_full.h5") as run:
        records = list(run.records(TX))
    assert len(records) > 0
    assert [r.sequence for r in records] == list(range(1, len(records) + 1))


READER = textwrap.dedent(
    """
    import sys, time, h5py
    path, sender = sys.argv[1], sys.argv[2]
    deadline = time.monotonic() + 30
    while True:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    counts = []
    while time.monotonic() < deadline:
        group = f[sender]
        idx = group["data_idx"]
        idx.refresh()
        values = idx[:]
        n = int((values != 0).sum())
        if not counts or n != counts[-1]:
            counts.append(n)
            print(n, flush=True)
        if len(counts) >= 4:
            break
        time.sleep(0.05)
    """
)


def test_concurrent_reader_sees_records_grow(satellites: Any, group: str, tmp_path: Path) -> None:
    satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    path = tmp_path / "data_live.h5"
    with Controller(group, interface=LOOPBACK) as ctl:
        _cycle_to_run(ctl, _config(tmp_path, True, rate=500), "live")
        writer = ctl.satellites[WRITER]
        wait_for(lambda: writer.command("get_concurrent_reading_status").payload["swmr_active"])
        reader = subprocess.run(
            [sys.executable, "-c", READER, str(path), TX],
            capture_output=True,
            text=True,
            timeout=60,
        )
        ctl.stop()
        ctl.await_state("ORBIT", 20)
    counts = [int(line) for line in reader.stdout.split()]
    assert reader.returncode == 0, reader.stderr
    assert len(counts) >= 4 and counts == sorted(counts) and counts[-1] > counts[0]


def _flushed_records(path: Path) -> int:
    """Records a live SWMR reader sees in ``path`` now (0 while it cannot open it)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int((f[TX]["data_idx"][:] != 0).sum()) if TX in f else 0
    except OSError:
        return 0


def test_killed_writer_leaves_a_readable_file(
    processes: Any, satellites: Any, group: str, tmp_path: Path
) -> None:
    writer = processes("SatelliteH5DataWriter", "w")
    satellites(RandomTransmitter, "tx")
    with Controller(group, interface=LOOPBACK) as ctl:
        config = _config(tmp_path, True, rate=1000)
        _cycle_to_run(ctl, config, "killed")
        handle = ctl.satellites[WRITER]
        wait_for(lambda: handle.command("get_concurrent_reading_status").payload["swmr_active"])
        path = tmp_path / "data_killed.h5"
        wait_for(lambda: _flushed_records(path) > 100, 20, 0.1, "100 records flushed")
        writer.signal(signal.SIGKILL)
        writer.proc.wait(10)
    path = tmp_path / "data_killed.h5"
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        idx = f[TX]["data_idx"][:]
        meta_idx = f[TX]["meta_idx"][:]
        count = int(np.argmax(idx == 0)) if (idx == 0).any() else len(idx)
        assert count > 100
        meta = f[TX]["meta"][: int(meta_idx[count - 1])].tobytes()
    tags = json.loads(meta[: int(meta_idx[0])])
    assert tags["block_lengths"] == [256]
    with open_run(path) as run:
        assert len(list(run.records(TX))) >= count
