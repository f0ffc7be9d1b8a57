"""SIGKILL / SIGSTOP / restart of real satellite and controller processes during a run.

After every fault: each record that reached the writer is in the file without a gap, the file
opens, the satellites end in a documented state with a status saying why, and a fresh
``initialize`` gives a clean, GOOD second run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from controller import Controller
from tests.faults.common import (
    DOCUMENTED_END_STATES,
    FLOWING,
    TX,
    WRITER,
    check_contiguous,
    clean_second_run,
    config,
    random_delay,
    state_of,
    status_of,
    to_run,
    wait_flushed,
    wait_following,
    wait_received,
    wait_state,
)
from tests.helpers import LOOPBACK, REPO, wait_for

SEEDS = [11, 23]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_transmitter(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, seed: int
) -> None:
    writer = processes("SatelliteH5DataWriter", "w")
    tx = processes("SatelliteRandomTransmitter", "tx")
    cfg = config(tmp_path)
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, cfg, "killtx")
        wait_following(writer, TX)
        received = wait_received(ctl)
        time.sleep(random_delay(seed))  # the moment of the kill varies with the seed
        tx.signal(signal.SIGKILL)
        tx.proc.wait(10)
        # the writer (DYNAMIC peer died) interrupts: substitute EOR, file closed, SAFE
        # wait for any end state, then insist on the documented one (an ERROR is a bug)
        state = wait_state(ctl, WRITER, DOCUMENTED_END_STATES, 20)
        assert state == "SAFE", status_of(ctl, WRITER)
        status = status_of(ctl, WRITER)
        assert TX in status, status
        count, eor = check_contiguous(tmp_path / "data_killtx.h5")
        assert count >= received and eor is not None
        meta = eor["run_metadata"]
        assert "ABORTED" in meta["condition"], meta
        assert meta["data_records"] == count  # everything the writer got is in the file
    processes("SatelliteRandomTransmitter", "tx")  # the operator restarts it
    # a fresh controller (the old one sees the restart too: test_controller_view_after_restart)
    with Controller(group, interface=LOOPBACK) as ctl:
        wait_for(lambda: state_of(ctl, TX) == "NEW", 20, what="restarted transmitter")
        clean_second_run(ctl, cfg, tmp_path, "after_killtx")


def _flushed_swmr_records(path: Path) -> int:
    """Decode every flushed record of a SWMR file with plain h5py (as a live reader would)."""
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        group = f[TX]
        idx = group["data_idx"][:]
        meta_idx = group["meta_idx"][:]
        count = int(np.argmax(idx == 0)) if (idx == 0).any() else len(idx)
        data = group["data"][: int(idx[count - 1])] if count else np.zeros(0, np.uint8)
        meta = group["meta"][: int(meta_idx[count - 1])].tobytes() if count else b""
    import json

    start_d = start_m = 0
    for i in range(count):
        tags = json.loads(meta[start_m : int(meta_idx[i])])
        assert sum(tags["block_lengths"]) == int(idx[i]) - start_d
        start_d, start_m = int(idx[i]), int(meta_idx[i])
    assert len(data) == start_d
    return count


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_writer(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, seed: int
) -> None:
    writer = processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    cfg = config(tmp_path)
    cfg["RandomTransmitter"]["tx"]["_data"] = {"data_timeout": 3}
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, cfg, "killw")
        handle = ctl.satellites[WRITER]
        wait_for(lambda: handle.command("get_concurrent_reading_status").payload["swmr_active"])
        flushed = wait_flushed(tmp_path / "data_killw.h5")
        time.sleep(random_delay(seed))  # the moment of the kill varies with the seed
        writer.signal(signal.SIGKILL)
        writer.proc.wait(10)
        # the transmitter (DYNAMIC peer died) is interrupted
        state = wait_state(ctl, TX, DOCUMENTED_END_STATES, 20)
        assert state == "SAFE", status_of(ctl, TX)
        status = status_of(ctl, TX)
        assert WRITER in status or "receiver did not keep up" in status, status
        count = _flushed_swmr_records(tmp_path / "data_killw.h5")
        assert count >= flushed > 0
    processes("SatelliteH5DataWriter", "w")
    with Controller(group, interface=LOOPBACK) as ctl:
        wait_for(lambda: state_of(ctl, WRITER) == "NEW", 20, what="restarted writer")
        clean_second_run(ctl, cfg, tmp_path, "after_killw")


CONTROLLER = textwrap.dedent(
    """
    import sys, time, json
    sys.path.insert(0, sys.argv[3])
    from controller import Controller
    from tests.faults.common import to_run
    from tests.helpers import wait_for
    cfg = json.loads(sys.argv[2])
    ctl = Controller(sys.argv[1], interface="127.0.0.1")
    to_run(ctl, cfg, "killctl")
    # both satellites follow this controller's heartbeats (each got a beat when it subscribed)
    wait_for(lambda: ctl._heartbeat.subscribers >= 2, 20, what="heartbeat subscribers")
    print("RUN", flush=True)
    time.sleep(300)
    """
)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_controller(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, seed: int
) -> None:
    import json

    sats = [processes("SatelliteH5DataWriter", "w"), processes("SatelliteRandomTransmitter", "tx")]
    cfg = config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, group, json.dumps(cfg), str(REPO)],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "RUN"
        wait_flushed(tmp_path / "data_killctl.h5")  # records flow
        time.sleep(random_delay(seed))  # the moment of the kill varies with the seed
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    # both satellites declare the silent controller dead (before a new controller of the same
    # name could revive it) ...
    for sat in sats:
        what = f"{sat.name} declaring the controller dead"
        wait_for(lambda s=sat: "peer Controller died" in s.output(), 20, what=what)
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        # ... and, as a controller has no role, the run goes on, untouched
        assert wait_state(ctl, TX, {"RUN"}) == "RUN"
        assert wait_state(ctl, WRITER, {"RUN"}) == "RUN"
        ctl.stop()
        ctl.await_state("ORBIT", 20)
        count, eor = check_contiguous(tmp_path / "data_killctl.h5")
        assert eor is not None and eor["run_metadata"]["condition"] == "GOOD"
        assert count == eor["run_metadata"]["data_records"] > 0
        clean_second_run(ctl, cfg, tmp_path, "after_killctl")


@pytest.mark.parametrize("who", ["tx", "w"])
def test_sigstop_then_sigcont(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, who: str
) -> None:
    procs = {
        "w": processes("SatelliteH5DataWriter", "w"),
        "tx": processes("SatelliteRandomTransmitter", "tx"),
    }
    cfg = config(tmp_path)
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, cfg, "frozen")
        before = wait_received(ctl)
        procs[who].signal(signal.SIGSTOP)
        # the duration is the point: shorter than the heartbeat lives, nobody is declared dead
        time.sleep(0.5)
        procs[who].signal(signal.SIGCONT)
        wait_received(ctl, before + FLOWING)  # records flow again
        assert wait_state(ctl, TX, {"RUN"}) == "RUN"
        assert wait_state(ctl, WRITER, {"RUN"}) == "RUN"
        ctl.stop()
        ctl.await_state("ORBIT", 20)
        count, eor = check_contiguous(tmp_path / "data_frozen.h5")
        assert eor is not None and eor["run_metadata"]["condition"] == "GOOD", eor
        assert count == eor["run_metadata"]["data_records"] > 0
        assert f"{count} records written" in status_of(ctl, WRITER)


def test_sigstop_longer_than_lives_interrupts_peer(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    writer = processes("SatelliteH5DataWriter", "w")
    tx = processes("SatelliteRandomTransmitter", "tx")
    cfg = config(tmp_path)
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, cfg, "longfreeze")
        wait_following(writer, TX)
        wait_received(ctl)
        tx.signal(signal.SIGSTOP)
        try:
            state = wait_state(ctl, WRITER, {"SAFE", "ERROR"}, 20)
            assert TX in status_of(ctl, WRITER)
        finally:
            tx.signal(signal.SIGCONT)
        assert state == "SAFE"
        count, eor = check_contiguous(tmp_path / "data_longfreeze.h5")
        assert eor is not None and eor["run_metadata"]["data_records"] == count
        # the transmitter resumes, sees its DYNAMIC peer (the writer) in SAFE and interrupts too
        state = wait_state(ctl, TX, DOCUMENTED_END_STATES, 20)
        assert state == "SAFE", status_of(ctl, TX)
        assert WRITER in status_of(ctl, TX)
        clean_second_run(ctl, cfg, tmp_path, "after_longfreeze")


def test_writer_restarted_between_runs(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    writer = processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    cfg = config(tmp_path, swmr=False)
    with Controller(group, interface=LOOPBACK) as ctl:
        first = clean_second_run(ctl, cfg, tmp_path, "before_restart")
        ctl.land()
        ctl.await_state("INIT", 15)
        assert writer.stop() == 0
        wait_for(lambda: WRITER not in ctl.satellites, 20, what="writer departure")
        processes("SatelliteH5DataWriter", "w")
        wait_for(lambda: state_of(ctl, WRITER) == "NEW", 20, what="restarted writer")
        clean_second_run(ctl, cfg, tmp_path, "after_restart")
    assert check_contiguous(tmp_path / "data_before_restart.h5")[0] == first


@pytest.mark.parametrize("rate", [1000, 0], ids=["paced", "unpaced"])
def test_transmitter_interrupted_to_safe_when_writer_dies(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, rate: int
) -> None:
    """Paced: a DATA message is in flight; unpaced: send_record waits for room in the queue."""
    writer = processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    cfg = config(tmp_path, rate=rate)
    cfg["RandomTransmitter"]["tx"]["_data"] = {"data_timeout": 4}
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, cfg, "dies")
        flushed = wait_flushed(tmp_path / "data_dies.h5")
        writer.signal(signal.SIGKILL)
        writer.proc.wait(10)
        assert wait_state(ctl, TX, {"SAFE", "ERROR"}, 20) == "SAFE", status_of(ctl, TX)
        assert WRITER in status_of(ctl, TX)
        assert _flushed_swmr_records(tmp_path / "data_dies.h5") >= flushed > 0
    processes("SatelliteH5DataWriter", "w")
    with Controller(group, interface=LOOPBACK) as ctl:
        wait_for(lambda: state_of(ctl, WRITER) == "NEW", 20, what="restarted writer")
        clean_second_run(ctl, cfg, tmp_path, "after_dies")


def test_controller_view_after_restart(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    """The same controller sees a SIGKILLed satellite DEAD, then its restart as NEW."""
    processes("SatelliteH5DataWriter", "w")
    tx = processes("SatelliteRandomTransmitter", "tx")
    with Controller(group, interface=LOOPBACK) as ctl:
        to_run(ctl, config(tmp_path), "view")
        tx.signal(signal.SIGKILL)
        tx.proc.wait(10)
        wait_for(lambda: ctl.states.get(TX) == "DEAD", 20, what="transmitter DEAD in the view")
        processes("SatelliteRandomTransmitter", "tx")
        wait_for(lambda: ctl.states.get(TX) == "NEW", 20, what="restarted transmitter NEW")
        # Its heartbeats may be found before its new command endpoint: poll until it answers.
        wait_for(lambda: state_of(ctl, TX) == "NEW", 20, what="restarted transmitter answers")
