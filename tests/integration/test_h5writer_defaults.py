"""H5DataWriter defaults: in SWMR mode a concurrent reader sees records about 1 s after they
arrive (``flush_interval`` defaults to 1 s there; 10 s in normal mode)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from controller import Controller
from satellites.h5datawriter.satellite import (
    FLUSH_INTERVAL_NORMAL,
    FLUSH_INTERVAL_SWMR,
    H5DataWriter,
)
from satellites.random_transmitter import RandomTransmitter
from tests.helpers import LOOPBACK, TX, WRITER, cycle_to_run, wait_for, writer_run_config

# Plain h5py, SWMR read: seconds until the first record's index entry is non-zero.
FIRST_RECORD = textwrap.dedent(
    """
    import sys, time, h5py
    path, sender, writer = sys.argv[1:4]
    t0 = time.monotonic()
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        idx = (f[sender] if sender in f else f[writer][sender])["data_idx"]
        while time.monotonic() - t0 < 20:
            idx.refresh()
            if idx.shape[0] and idx[0] != 0:
                print(f"{time.monotonic() - t0:.3f}")
                break
            time.sleep(0.05)
    """
)


def test_swmr_reader_sees_records_within_about_a_second_by_default(
    satellites: Any, group: str, tmp_path: Path
) -> None:
    assert FLUSH_INTERVAL_SWMR == 1.0 and FLUSH_INTERVAL_NORMAL == 10.0
    satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    config = writer_run_config(tmp_path, True, rate=200, block_size=64, seed=1)
    del config["H5DataWriter"]["w"]["flush_interval"]  # the default
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        cycle_to_run(ctl, config, "defaults")
        writer = ctl.satellites[WRITER]
        wait_for(lambda: writer.command("get_concurrent_reading_status").payload["swmr_active"])
        reader = subprocess.run(
            [sys.executable, "-c", FIRST_RECORD, str(tmp_path / "data_defaults.h5"), TX, WRITER],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ctl.states[WRITER] == "RUN"  # seen while the run goes on, not at close
        ctl.stop()
        ctl.await_state("ORBIT", 20)
    assert reader.returncode == 0, reader.stderr
    # one flush interval plus scheduling slack; with a 10 s default this fails
    assert reader.stdout.strip() and float(reader.stdout) < 3.0, reader.stdout
