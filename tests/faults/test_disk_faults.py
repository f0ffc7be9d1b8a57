"""Disk faults with real file systems: a tiny tmpfs that fills up, a read-only mount, and a
directory the writer has no permission to write into.

The mounts need root (skipped with the reason otherwise; always undone). The permission test
runs either way: as root, the writer process is started without the capabilities that let root
ignore file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so it really meets EACCES.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from constellation.errors import TransitionError
from controller import Controller
from tests.conftest import FAST_SETTINGS, FAST_TIMING
from tests.faults.common import (
    TX,
    WRITER,
    check_contiguous,
    config,
    status_of,
    swmr_records_seen,
    to_run,
    wait_state,
)
from tests.helpers import LOOPBACK, console_script, wait_for


@contextmanager
def tmpfs(directory: Path, options: str) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}): {result.stderr.strip() or 'not root?'}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


# 2 MiB: the writer's disk reserve (32 MiB headroom, satellites/h5datawriter/space.py) cannot be
# taken at the first batch. 40 MiB: several MiB of records are written before the disk is full.
@pytest.mark.parametrize("size", ["2m", "40m"])
def test_full_disk_stops_writer_and_keeps_records(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any, size: str
) -> None:
    processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    # paced at 12 MB/s: the disk fills within seconds
    cfg = config(tmp_path / "disk", swmr=True, rate=3000)
    cfg["RandomTransmitter"]["tx"]["block_size"] = 4096
    cfg["RandomTransmitter"]["tx"]["_data"] = {"data_timeout": 4}
    with (
        tmpfs(tmp_path / "disk", f"size={size}") as disk,
        Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl,
    ):
        if size == "2m":  # the file cannot even be set up: ERROR in starting, not a crash
            with pytest.raises(TransitionError, match="No space"):
                to_run(ctl, cfg, "full")
        else:
            to_run(ctl, cfg, "full")
        assert wait_state(ctl, WRITER, {"ERROR"}, 30) == "ERROR"
        status = status_of(ctl, WRITER)
        assert "data_full.h5" in status and "No space" in status, status
        # the transmitter waits in `starting` for the writer when it fails at once (2m): the
        # conditional transition then fails to ERROR; when the writer fails in RUN (40m) the
        # transmitter is interrupted to SAFE (DYNAMIC role)
        expected = "ERROR" if size == "2m" else "SAFE"
        assert wait_state(ctl, TX, {"SAFE", "ERROR", "ORBIT"}, 30) == expected, status_of(ctl, TX)
        assert WRITER in status_of(ctl, TX)
        copy = tmp_path / "copy.h5"
        if (disk / "data_full.h5").exists():
            shutil.copy(disk / "data_full.h5", copy)
    if size != "2m":
        count, _ = check_contiguous(copy)
        assert count > 100
    # a fresh initialize, writing elsewhere, gives a clean run
    with Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl:
        good = config(tmp_path / "good", swmr=True)
        to_run(ctl, good, "good")
        good_file = tmp_path / "good" / "data_good.h5"
        wait_for(lambda: swmr_records_seen(good_file) > 100, 20, what="records of the new run")
        ctl.stop()
        ctl.await_state("ORBIT", 20)
    count, eor = check_contiguous(tmp_path / "good" / "data_good.h5")
    assert eor is not None and eor["run_metadata"]["condition"] == "GOOD"
    assert count == eor["run_metadata"]["data_records"] > 0


def test_read_only_mount_fails_at_initialize(
    processes: Any, group: str, tmp_path: Path, fast_timing: Any
) -> None:
    processes("SatelliteH5DataWriter", "w")
    processes("SatelliteRandomTransmitter", "tx")
    with (
        tmpfs(tmp_path / "ro", "ro,size=1m") as ro,
        Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl,
    ):
        cfg = config(ro, swmr=False)
        ctl.await_satellites([TX, WRITER], timeout=20)
        ctl.initialize(cfg, targets=[WRITER])
        # Found at initialize, not when the first run's file cannot be created.
        assert wait_state(ctl, WRITER, {"ERROR"}, 15) == "ERROR"
        status = status_of(ctl, WRITER)
        assert "output_directory" in status and "Read-only file system" in status, status
        assert status.count("Read-only") == 1  # the cause once, in one line
        assert not list(ro.iterdir())
        # not a crash: the writer still answers and can be initialized again
        ctl.initialize(config(tmp_path / "rw", swmr=False), targets=[WRITER])
        assert wait_state(ctl, WRITER, {"INIT"}, 15) == "INIT"


_PR_CAPBSET_DROP = 24  # prctl(2)
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2  # capability(7)


def _drop_permission_override() -> None:
    """preexec_fn: remove root's permission bypass from this process and all it executes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap})")


def test_unwritable_directory_fails_at_initialize(
    group: str, tmp_path: Path, fast_timing: Any
) -> None:
    """The writer (not root, or root without its override) cannot write into a 0o500 directory."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    log = (tmp_path / "writer.log").open("wb")
    cmd = [console_script("SatelliteH5DataWriter"), "-g", group, "-n", "w", "-i", LOOPBACK]
    writer = subprocess.Popen(
        cmd,
        env={**os.environ, **FAST_TIMING},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_drop_permission_override if os.geteuid() == 0 else None,
    )
    try:
        with Controller(group, interface=LOOPBACK, settings=FAST_SETTINGS) as ctl:
            ctl.await_satellites([WRITER], timeout=20)
            ctl.initialize(config(ro, swmr=False), targets=[WRITER])
            assert wait_state(ctl, WRITER, {"ERROR"}, 15) == "ERROR"
            status = status_of(ctl, WRITER)
            assert "output_directory" in status and "Permission denied" in status, status
            assert not list(ro.iterdir())
            # not a crash: the writer still answers and can be initialized again
            ctl.initialize(config(tmp_path / "rw", swmr=False), targets=[WRITER])
            assert wait_state(ctl, WRITER, {"INIT"}, 15) == "INIT"
    finally:
        writer.terminate()
        try:
            writer.wait(15)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait(10)
        log.close()
        ro.chmod(0o700)  # so that pytest can remove tmp_path
