"""Slow storage: a flush that takes 5 s must not stall the writer's heartbeats or commands.

The writer process gets tests/faults/slow_storage on PYTHONPATH, whose ``sitecustomize`` makes
every ``RunFile.flush`` sleep 5 s first (as on a stalled disk) and logs when each flush begins
and ends. While the first flush hangs, the writer keeps answering ``get_state`` quickly, its
heartbeats keep coming, the transmitter stays in RUN (no peer declares the writer dead), and
after ``stop`` every record sent is in the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from controller import Controller
from tests.conftest import FAST_SETTINGS
from tests.faults.common import check_contiguous, config, state_of, to_run
from tests.helpers import LOOPBACK, TX, WRITER, wait_for

SLOW_STORAGE = Path(__file__).resolve().parent / "slow_storage"
FLUSH_DELAY_S = 5.0


def _flush_log(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_slow_flush_keeps_heartbeats_and_commands(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    flush_log = tmp_path / "flushes.log"
    pythonpath = os.pathsep.join(p for p in (str(SLOW_STORAGE), os.environ.get("PYTHONPATH")) if p)
    processes(
        "SatelliteH5DataWriter",
        "w",
        env={
            "PYTHONPATH": pythonpath,
            "CONSTELLATION_TEST_SLOW_FLUSH_S": str(FLUSH_DELAY_S),
            "CONSTELLATION_TEST_FLUSH_LOG": str(flush_log),
        },
    )
    processes("SatelliteRandomTransmitter", "tx")
    out = tmp_path / "out"
    cfg = config(out, swmr=True, rate=1000, flush_interval=0.5)
    with Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl:
        to_run(ctl, cfg, "slow")
        wait_for(lambda: "start" in _flush_log(flush_log), 10, what="the first (slow) flush")
        replies: list[float] = []
        ages: list[float] = []
        states: set[tuple[str, str]] = set()
        while "end" not in _flush_log(flush_log):
            t0 = time.monotonic()
            states.add((WRITER, state_of(ctl, WRITER)))
            replies.append(time.monotonic() - t0)
            states.add((TX, state_of(ctl, TX)))
            peer = ctl.heartbeats.peer(WRITER)
            assert peer is not None
            ages.append(time.monotonic() - peer.last_seen)
            assert len(replies) < 1000, "the slow flush never ended"
            time.sleep(0.1)  # sampling period, not synchronisation
        # the samples cover most of the 5 s flush
        assert len(replies) >= 20, replies
        assert max(replies) < 0.5, f"get_state took up to {max(replies):.2f} s"
        assert max(ages) < 2.0, f"writer heartbeat gap up to {max(ages):.2f} s"
        assert states == {(WRITER, "RUN"), (TX, "RUN")}, states
        ctl.stop()
        ctl.await_state("ORBIT", 60)
    count, eor = check_contiguous(out / "data_slow.h5")
    assert eor is not None
    assert eor["run_metadata"]["condition"] == "GOOD", eor
    assert count == eor["run_metadata"]["data_records"] > 0
