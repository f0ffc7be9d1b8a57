"""Shared pieces of the fault-injection tests: configuration, run cycling and file checks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from constellation.reader import open_run
from controller import Controller
from controller.telemetry import MetricWatcher
from tests.helpers import (
    TX,
    WRITER,
    SatelliteProcess,
    cycle_to_run,
    wait_for,
    writer_run_config,
)

#: Steady states a satellite may end in after a fault (docs/state-machine.md).
DOCUMENTED_END_STATES = {"SAFE", "ERROR", "ORBIT"}
#: Records the writer must have received before a run counts as carrying data (0.1 s at 1 kHz).
FLOWING = 100


def config(out: Path, swmr: bool = True, rate: float = 1000, **writer: Any) -> dict[str, Any]:
    """Transmitter + writer of one run; roles default to DYNAMIC (a failure interrupts)."""
    return writer_run_config(
        out, swmr, rate=rate, block_size=128, seed=5, writer_data={"eor_timeout": 2}, **writer
    )


def to_run(
    ctl: Controller, cfg: dict[str, Any], run_id: str, names: list[str] | None = None
) -> None:
    names = names or [TX, WRITER]
    ctl.await_satellites(names, timeout=20)
    if all(state_of(ctl, n) == "ORBIT" for n in names):
        ctl.land()
        ctl.await_state("INIT", 15)
    cycle_to_run(ctl, cfg, run_id)


def random_delay(seed: int, low: float = 0.0, high: float = 0.4) -> float:
    """A reproducible random extra moment, once records flow (the fault's moment varies)."""
    return random.Random(seed).uniform(low, high)


def wait_received(ctl: Controller, at_least: int = FLOWING, timeout: float = 20) -> int:
    """Wait until the writer's RX_RECORDS metric of this run reaches ``at_least``; returns it."""
    with MetricWatcher(ctl, ["RX_RECORDS"]) as watcher:

        def count() -> int:
            samples = watcher.latest("RX_RECORDS", WRITER).values()
            value = max((s.value for s in samples), default=0)
            return value if value >= at_least else 0

        return int(wait_for(count, timeout, what=f"{at_least} records received by {WRITER}"))


def wait_following(sat: SatelliteProcess, peer: str, timeout: float = 20) -> None:
    """Wait until ``sat`` found ``peer``'s heartbeats (a peer beats at once for a subscriber):
    from then on, ``sat`` notices when ``peer`` falls silent."""
    what = f"{sat.name} following {peer}'s heartbeats"
    wait_for(lambda: f"discovered {peer} HEARTBEAT" in sat.output(), timeout, what=what)


def wait_flushed(path: Path, at_least: int = 1, timeout: float = 20) -> int:
    """Wait until a live SWMR reader sees ``at_least`` flushed records in ``path``; returns them."""
    return int(
        wait_for(
            lambda: n if (n := swmr_records_seen(path)) >= at_least else 0,
            timeout,
            what=f"{at_least} flushed records in {path.name}",
        )
    )


def state_of(ctl: Controller, name: str) -> str:
    try:
        return ctl.satellites[name].command("get_state", timeout=2).verb
    except (TimeoutError, KeyError):
        return "?"


def status_of(ctl: Controller, name: str) -> str:
    return ctl.satellites[name].command("get_status", timeout=2).verb


def wait_state(ctl: Controller, name: str, states: set[str], timeout: float = 15) -> str:
    return wait_for(
        lambda: s if (s := state_of(ctl, name)) in states else None,
        timeout,
        what=f"{name} in {sorted(states)}",
    )


def check_contiguous(path: Path, sender: str = TX) -> tuple[int, dict[str, Any] | None]:
    """The file opens, the sender's records are 1..n without a gap; returns (n, EOR)."""
    with open_run(path) as run:
        count = run.record_count(sender)
        sequences = [r.sequence for r in run.records(sender)]
        eor = run.eor(sender)
    assert sequences == list(range(1, count + 1)), "records missing or out of order"
    return count, eor


def clean_second_run(ctl: Controller, cfg: dict[str, Any], out: Path, run_id: str) -> int:
    """A fresh initialize brings the group back: full run, file GOOD and complete."""
    to_run(ctl, cfg, run_id)
    writer = ctl.satellites[WRITER]
    wait_for(lambda: writer.command("get_current_filename").verb.endswith(f"data_{run_id}.h5"))
    wait_received(ctl)  # the run carries records before it is stopped
    ctl.stop()
    ctl.await_state("ORBIT", 20)
    count, eor = check_contiguous(out / f"data_{run_id}.h5")
    assert eor is not None
    assert eor["run_metadata"]["condition"] == "GOOD", eor
    assert count == eor["run_metadata"]["data_records"] >= FLOWING
    return count


def swmr_records_seen(path: Path, sender: str = TX) -> int:
    """Records of ``sender`` a live SWMR reader sees in ``path`` now (0 while none or no file)."""
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            if sender not in f:
                return 0
            idx = f[sender]["data_idx"][:]
    except (OSError, KeyError):
        return 0
    return int(np.argmax(idx == 0)) if (idx == 0).any() else len(idx)
