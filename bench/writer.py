"""Benchmark: RandomTransmitter -> H5DataWriter end to end, in both file layouts.

Starts both satellites as processes on 127.0.0.1, runs the transmitter at full speed for
``--seconds`` (default 3), stops, and measures records stored / (run time + time from ``stop``
until both are in ORBIT). In the same run it appends the same bytes with plain h5py to one
dataset, for the ratio. Prints a table, or with ``--json`` one JSON line per mode.

    python bench/writer.py [--seconds 3] [--block-size 1024] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import psutil

from constellation.reader import open_run
from controller import Controller

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent
TX, WRITER = "RandomTransmitter.tx", "H5DataWriter.w"


def _start(script: str, name: str, group: str) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / script), "-g", group, "-n", name, "-i", LOOPBACK, "-l", "WARNING"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _peak_rss(proc: subprocess.Popen[bytes], peaks: dict[int, int]) -> None:
    try:
        rss = psutil.Process(proc.pid).memory_info().rss
    except psutil.Error:
        return
    peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)


def run_mode(swmr: bool, seconds: float, block_size: int, out: Path) -> dict[str, Any]:
    group = f"bench_{uuid.uuid4().hex[:8]}"
    procs = [
        _start("SatelliteH5DataWriter", "w", group),
        _start("SatelliteRandomTransmitter", "tx", group),
    ]
    peaks: dict[int, int] = {}
    run_id = f"{'swmr' if swmr else 'normal'}_{uuid.uuid4().hex[:6]}"
    config = {
        "RandomTransmitter": {
            "tx": {"block_size": block_size, "_conditions": {"require_starting_after": [WRITER]}}
        },
        "H5DataWriter": {
            "w": {
                "output_directory": str(out),
                "allow_concurrent_reading": swmr,
                "flush_interval": 1.0,
                "_data": {"receive_from": [TX]},
            }
        },
    }
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([TX, WRITER], timeout=30)
            ctl.initialize(config)
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            ctl.start(run_id)
            ctl.await_state("RUN", 30)
            t_run = time.monotonic()
            while time.monotonic() - t_run < seconds:
                for proc in procs:
                    _peak_rss(proc, peaks)
                time.sleep(0.1)
            t_stop = time.monotonic()
            ctl.stop()
            ctl.await_state("ORBIT", 120)
            t_orbit = time.monotonic()
            ctl.land()
            ctl.await_state("INIT", 30)
            ctl.shutdown()
    finally:
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    with open_run(out / f"data_{run_id}.h5") as run:
        stored = run.record_count(TX)
        eor = run.eor(TX)
    sent = int(eor["run_metadata"]["data_records"]) if eor else -1
    total = t_orbit - t_run
    return {
        "mode": "swmr" if swmr else "normal",
        "block_size": block_size,
        "records_sent": sent,
        "records_stored": stored,
        "lost": sent - stored,
        "run_s": round(t_stop - t_run, 2),
        "stop_s": round(t_orbit - t_stop, 2),
        "records_per_s": round(stored / total),
        "mb_per_s": round(stored * block_size / total / 1e6, 1),
        "writer_peak_rss_mb": round(peaks.get(procs[0].pid, 0) / 2**20, 1),
        "transmitter_peak_rss_mb": round(peaks.get(procs[1].pid, 0) / 2**20, 1),
    }


def raw_h5py(records: int, block_size: int, out: Path, batch: int = 2000) -> float:
    """Bytes/s of plain h5py appending ``records`` blocks to one resizable dataset."""
    data = np.random.default_rng(0).integers(0, 256, batch * block_size, dtype=np.uint8)
    path = out / f"raw_{uuid.uuid4().hex[:6]}.h5"
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver="latest") as f:
        dset = f.create_dataset("data", (0,), maxshape=(None,), dtype=np.uint8, chunks=(1 << 20,))
        size = 0
        for _ in range(max(1, records // batch)):
            dset.resize((size + data.size,))
            dset[size:] = data
            size += data.size
    elapsed = time.perf_counter() - t0
    path.unlink()
    return size / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--modes", nargs="+", default=["swmr", "normal"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_writer_") as tmp:
        out = Path(tmp)
        for mode in args.modes:
            result = run_mode(mode == "swmr", args.seconds, args.block_size, out)
            raw = raw_h5py(max(result["records_stored"], 100_000), args.block_size, out)
            result["raw_h5py_mb_per_s"] = round(raw / 1e6, 1)
            result["ratio"] = round(result["mb_per_s"] * 1e6 / raw, 3)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(
                    f"{mode:>6}: {result['records_per_s']:>9,} records/s "
                    f"({result['mb_per_s']} MB/s), stored {result['records_stored']:,} of "
                    f"{result['records_sent']:,}, stop took {result['stop_s']} s, "
                    f"raw h5py {result['raw_h5py_mb_per_s']} MB/s, ratio {result['ratio']}, "
                    f"peak RSS writer {result['writer_peak_rss_mb']} MB / transmitter "
                    f"{result['transmitter_peak_rss_mb']} MB",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
