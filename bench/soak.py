"""Soak test: N records through RandomTransmitter -> H5DataWriter (SWMR) in consecutive runs.

Both satellites run as separate processes on 127.0.0.1, steered by a Controller. Each run lasts
until a concurrent reader process (plain h5py in SWMR mode, polling the file every 0.2 s) has
seen ``--run-records`` records; runs repeat until ``--records`` records were stored. Reported
per run and in total: records sent (EOR ``data_records``), stored (the file's record count),
lost (must be 0), the rate over time, the RSS over time of the writer, the transmitter and the
reader (psutil, every 0.5 s), and a verdict for flat memory: the RSS of each satellite at the end
of the last run may exceed the one at the end of the first run by less than ``--rss-growth``,
and within every run the RSS at its end may exceed the one when half of its records were seen
by less than that, too (so one long run, ``--run-records`` = ``--records``, is checked; the
first half is warm-up: allocator high-water mark, HDF5 caches and the disk queue filling).

    python bench/soak.py [--records 10000000] [--run-records 2000000] [--block-size 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _procs import LOOPBACK, start, unique_group

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from constellation.reader import open_run
from controller import Controller

TX = "RandomTransmitter.tx"
WRITER = "H5DataWriter.w"

READER = textwrap.dedent(
    """
    import sys, time, h5py
    path, writer, sender = sys.argv[1:4]
    while True:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
            idx = f[sender]["data_idx"]  # sender groups sit at the file root
            break
        except (OSError, KeyError):
            time.sleep(0.1)
    while True:
        idx.refresh()
        n = idx.shape[0]
        lo, hi = 0, n  # first index whose entry is 0 (entries past the last record are 0)
        while lo < hi:
            mid = (lo + hi) // 2
            if idx[mid] != 0:
                lo = mid + 1
            else:
                hi = mid
        print(lo, flush=True)
        time.sleep(0.2)
    """
)


def config(out: Path, block_size: int) -> dict[str, Any]:
    return {
        "RandomTransmitter": {
            "tx": {
                "block_size": block_size,
                "rate": 0,
                "_conditions": {"require_starting_after": [WRITER]},
            }
        },
        "H5DataWriter": {
            "w": {
                "output_directory": str(out),
                "allow_concurrent_reading": True,
                "flush_interval": 1.0,
                "_data": {"receive_from": [TX]},
            }
        },
    }


class Sampler(threading.Thread):
    """RSS of named processes every ``period`` s."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.procs: dict[str, psutil.Process] = {}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self._stop.wait(self.period):
            row = {}
            for name, proc in list(self.procs.items()):
                try:
                    row[name] = proc.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            self.samples.append((time.monotonic() - self.t0, row))

    def latest(self, name: str) -> float:
        for _, row in reversed(self.samples):
            if name in row:
                return row[name]
        return 0.0

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--run-records", type=int, default=2_000_000)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--rss-growth", type=float, default=0.10)
    parser.add_argument("--output", type=Path, default=None, help="directory (default: temp)")
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="soak_")
    out = args.output or Path(tmp.name)
    group = unique_group("soak")
    writer = start("SatelliteH5DataWriter", "w", group, "DEBUG", out / "writer.log")
    tx = start("SatelliteRandomTransmitter", "tx", group, "DEBUG", out / "tx.log")
    sampler = Sampler()
    sampler.procs = {"writer": psutil.Process(writer.pid), "tx": psutil.Process(tx.pid)}
    sampler.start()
    rows: list[dict[str, Any]] = []
    total_stored = total_sent = 0
    ok = True
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([TX, WRITER], timeout=30)
            ctl.initialize(config(out, args.block_size))
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            run = 0
            while total_stored < args.records:
                run += 1
                run_id = f"soak{run}"
                path = out / f"data_{run_id}.h5"
                ctl.start(run_id)
                ctl.await_state("RUN", 30)
                t_start = time.monotonic()
                reader = subprocess.Popen(
                    [sys.executable, "-c", READER, str(path), WRITER, TX],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                sampler.procs["reader"] = psutil.Process(reader.pid)
                seen = [0]
                timeline: list[tuple[float, int]] = []

                def follow(r: subprocess.Popen[str] = reader, s: list[int] = seen) -> None:
                    assert r.stdout is not None
                    for line in r.stdout:
                        s[0] = int(line)

                threading.Thread(target=follow, daemon=True).start()
                target = min(args.run_records, args.records - total_stored)
                early_rss = {"writer": 0.0, "tx": 0.0}
                while seen[0] < target:
                    time.sleep(0.5)
                    timeline.append((time.monotonic() - t_start, seen[0]))
                    if not early_rss["writer"] and seen[0] >= target // 2:
                        early_rss = {k: sampler.latest(k) for k in early_rss}
                    if ctl.states.get(TX) not in ("RUN", None) or time.monotonic() - t_start > 600:
                        print(f"run {run}: aborted, states {ctl.states}", flush=True)
                        ok = False
                        break
                late_rss = {k: sampler.latest(k) for k in early_rss}
                ctl.stop()
                ctl.await_state("ORBIT", 120)
                elapsed = time.monotonic() - t_start
                reader_rss = sampler.latest("reader")
                reader.terminate()
                reader.wait(10)
                sampler.procs.pop("reader", None)
                with open_run(path) as run_file:
                    stored = run_file.record_count(TX)
                    eor = run_file.eor(TX) or {}
                sent = int(eor.get("run_metadata", {}).get("data_records", -1))
                rates = [
                    (b[1] - a[1]) / (b[0] - a[0])
                    for a, b in itertools.pairwise(timeline)
                    if b[0] > a[0]
                ]
                row = {
                    "run": run_id,
                    "sent": sent,
                    "stored": stored,
                    "lost": sent - stored,
                    "condition": eor.get("run_metadata", {}).get("condition"),
                    "seconds": round(elapsed, 1),
                    "rate_hz": round(stored / elapsed),
                    "rate_min_max_hz": (round(min(rates, default=0)), round(max(rates, default=0))),
                    "rss_writer_half_end_mib": (
                        round(early_rss["writer"], 1),
                        round(late_rss["writer"], 1),
                    ),
                    "rss_tx_half_end_mib": (round(early_rss["tx"], 1), round(late_rss["tx"], 1)),
                    "rss_writer_mib": round(sampler.latest("writer"), 1),
                    "rss_tx_mib": round(sampler.latest("tx"), 1),
                    "rss_reader_mib": round(reader_rss, 1),
                    "reader_saw": seen[0],
                }
                rows.append(row)
                print(row, flush=True)
                total_sent += sent
                total_stored += stored
                if stored <= 0:
                    ok = False
                    break
            ctl.land()
            ctl.await_state("INIT", 30)
    finally:
        sampler.stop()
        tx.stop()
        writer.stop()
    lost = total_sent - total_stored
    print(f"TOTAL sent={total_sent} stored={total_stored} lost={lost} runs={len(rows)}")
    print("RSS over time (s: writer/tx/reader MiB):")
    step = max(1, len(sampler.samples) // 20)
    for t, row in sampler.samples[::step]:
        print(f"  {t:7.1f}: " + " ".join(f"{k}={v:.0f}" for k, v in row.items()))
    verdict = True
    if len(rows) >= 2:
        for key in ("rss_writer_mib", "rss_tx_mib"):
            first, last = rows[0][key], rows[-1][key]
            growth = (last - first) / first if first else 0.0
            flat = growth < args.rss_growth
            verdict &= flat
            word = "FLAT" if flat else "GROWING"
            print(f"{key}: first run {first} -> last run {last} ({growth:+.1%}) {word}")
    for row in rows:
        for key in ("rss_writer_half_end_mib", "rss_tx_half_end_mib"):
            early, late = row[key]
            growth = (late - early) / early if early else 0.0
            flat = growth < args.rss_growth
            verdict &= flat
            word = "FLAT" if flat else "GROWING"
            print(f"{row['run']} {key}: {early} -> {late} ({growth:+.1%}) {word}")
    good = ok and lost == 0 and all(r["lost"] == 0 and r["condition"] == "GOOD" for r in rows)
    lost_word, memory_word = ("PASS" if good else "FAIL"), ("PASS" if verdict else "FAIL")
    print(f"VERDICT lost=0: {lost_word}; flat memory: {memory_word}")
    tmp.cleanup()
    return 0 if good and verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
