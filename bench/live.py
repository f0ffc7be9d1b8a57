"""Benchmark: live readers of an H5DataWriter run (SWMR layout, 1 KiB records), one run each.

Scenarios, each with satellite processes on 127.0.0.1 (RandomTransmitter -> H5DataWriter):

- ``none``: full speed, no reader: records stored per second (the reference);
- ``ten``: full speed with 10 ``drop-oldest`` readers (separate processes): stored rate and
  its ratio to ``none`` (goal >= 0.95);
- ``paced``: the transmitter paced at ``--paced-rate`` records/s (100k) and one reader that
  reads as fast as it can: its drops (goal 0);
- ``stalled``: full speed with one reader that stops reading (SIGSTOP) after joining: the stored
  rate's ratio to ``none`` (goal >= 0.95) and the writer's peak RSS next to ``none``'s;
- ``latency``: paced at 1 kHz, one reader in this process: median and 99th percentile of the
  time from the writer's publication (after storing) to ``read()`` returning (goal <= 10 ms).

Each reader process is what a user writes for a rate display: a ``Streamer`` with the default
policy (``drop-oldest``) and buffer, ``read(1.0)`` in a loop, adding up ``frame.count()`` of
every frame, until a frame brings the EOR; it prints that sum, its stats and the CPU seconds it
used from the run's start. (``count()`` decodes nothing: a frame decodes records on access.)
The latency reader reads ``record.published`` of every record, so it decodes them all.
Every scenario runs ``--repeats`` times (3), interleaved; figures and ratios (each taken
within one repeat) are reported as medians.

    python bench/live.py [--seconds 3] [--repeats 3] [--paced-rate 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from constellation.live import EOR, Streamer
from constellation.reader import open_run
from controller import Controller

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent
TX, WRITER = "RandomTransmitter.tx", "H5DataWriter.w"


def _start(script: str, name: str, group: str) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / script), "-g", group, "-n", name, "-i", LOOPBACK, "-l", "WARNING"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _reader(group: str, buffer: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--reader", group, "--buffer", str(buffer)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def reader_main(group: str, buffer: int) -> None:
    """A reader process: prints ``ready`` once connected, then its totals after the EOR."""
    with Streamer(group, interface=LOOPBACK, buffer=buffer) as streamer:
        while not streamer.receivers:
            time.sleep(0.05)
        time.sleep(0.5)  # let the subscription reach the writer
        print("ready", flush=True)
        cpu_start = time.process_time()
        quiet_since = time.monotonic()
        counted = 0
        while time.monotonic() - quiet_since < 10:  # a lost EOR (stalled reader) ends it too
            frame = streamer.read(1.0)
            if frame is not None:
                quiet_since = time.monotonic()
                counted += frame.count()
                if any(isinstance(e, EOR) for e in frame.events):
                    break
        stats = streamer.stats.get(TX)
        if stats is None:
            print(json.dumps({"received": 0, "dropped": -1}), flush=True)
            return
        totals = {"received": stats.received, "dropped": stats.dropped, "counted": counted}
        totals["discarded_messages"] = streamer._buffer.discarded  # messages, not records
        totals["cpu_s"] = round(time.process_time() - cpu_start, 2)
        print(json.dumps(totals), flush=True)


def _totals(reader: subprocess.Popen[str]) -> dict[str, Any]:
    """The last line a reader printed: its totals (after its EOR, or 10 s of silence)."""
    try:
        text, _ = reader.communicate(timeout=60)
        return dict(json.loads(text.strip().splitlines()[-1]))
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        reader.kill()
        return {"received": -1, "dropped": -1}


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far."""
    try:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def run(scenario: str, seconds: float, out: Path, paced_rate: float, buffer: int) -> dict[str, Any]:
    group = f"bench_{uuid.uuid4().hex[:8]}"
    procs = [
        _start("SatelliteH5DataWriter", "w", group),
        _start("SatelliteRandomTransmitter", "tx", group),
    ]
    readers: list[subprocess.Popen[str]] = []
    rate = {"paced": paced_rate, "latency": 1000.0}.get(scenario, 0.0)
    run_id = f"{scenario}_{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {"scenario": scenario}
    streamer = None
    latencies: list[float] = []
    totals: list[dict[str, Any]] = []
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([TX, WRITER], timeout=30)
            count = {"ten": 10, "paced": 1, "stalled": 1}.get(scenario, 0)
            readers = [_reader(group, buffer) for _ in range(count)]
            for reader in readers:
                assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
            if scenario == "stalled":
                os.kill(readers[0].pid, signal.SIGSTOP)
            if scenario == "latency":
                streamer = Streamer(group, interface=LOOPBACK)
                while not streamer.receivers:
                    time.sleep(0.05)
                time.sleep(0.5)
            tx = {
                "block_size": 1024,
                "rate": rate,
                "_conditions": {"require_starting_after": [WRITER]},
            }
            writer = {
                "output_directory": str(out),
                "allow_concurrent_reading": True,
                "_data": {"receive_from": [TX]},
            }
            ctl.initialize({"RandomTransmitter": {"tx": tx}, "H5DataWriter": {"w": writer}})
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            ctl.start(run_id)
            ctl.await_state("RUN", 30)
            t_run = time.monotonic()
            cpu_run = [_cpu(p.pid) for p in procs]
            peak = 0
            while time.monotonic() - t_run < seconds:
                peak = max(peak, _rss(procs[0].pid))
                if streamer is not None:
                    frame = streamer.read(0.05)
                    now = time.time()
                    if frame is not None:
                        latencies += [
                            now - r.published for rs in frame.records.values() for r in rs
                        ]
                else:
                    time.sleep(0.1)
            ctl.stop()
            ctl.await_state("ORBIT", 120)
            t_orbit = time.monotonic()
            cpu_used = [_cpu(p.pid) - c for p, c in zip(procs, cpu_run, strict=True)]
            if scenario == "stalled":
                os.kill(readers[0].pid, signal.SIGCONT)
            totals = [_totals(reader) for reader in readers]  # before the writer shuts down
            ctl.land()
            ctl.await_state("INIT", 30)
            ctl.shutdown()
    finally:
        if streamer is not None:
            streamer.close()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    path = out / f"data_{run_id}.h5"
    with open_run(path) as h5:
        stored = h5.record_count(TX)
    path.unlink()
    result.update(
        records_stored=stored,
        records_per_s=round(stored / (t_orbit - t_run)),
        writer_peak_rss_mb=round(peak / 2**20, 1),
        writer_cpu_s=round(cpu_used[0], 2),
        transmitter_cpu_s=round(cpu_used[1], 2),
    )
    if totals:
        result["readers_received"] = [t["received"] for t in totals]
        result["readers_dropped"] = [t["dropped"] for t in totals]
        result["readers_discarded_messages"] = [t.get("discarded_messages") for t in totals]
        result["readers_cpu_s"] = [t.get("cpu_s") for t in totals]
        result["readers_counted"] = [t.get("counted") for t in totals]
    if latencies:
        latencies.sort()
        result["latency_median_ms"] = round(statistics.median(latencies) * 1000, 2)
        result["latency_p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
    return result


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    """Median over the runs of the sum of a per-reader list."""
    return round(statistics.median(sum(r.get(key) or [0]) for r in runs), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--paced-rate", type=float, default=100_000)
    parser.add_argument("--scenarios", default="none,ten,paced,stalled,latency")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--buffer", type=int, default=4 * 2**20, help="reader buffer, bytes")
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        reader_main(args.reader, args.buffer)
        return 0
    results: dict[str, list[dict[str, Any]]] = {}
    ratios: dict[str, list[float]] = {"ten_vs_none": [], "stalled_vs_none": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            this: dict[str, dict[str, Any]] = {}
            for scenario in args.scenarios.split(","):
                this[scenario] = run(
                    scenario, args.seconds, Path(tmp), args.paced_rate, args.buffer
                )
                results.setdefault(scenario, []).append(this[scenario])
                if not args.json:
                    print(this[scenario], flush=True)
            base = this.get("none", {}).get("records_per_s")
            for name in ("ten", "stalled"):
                if base and name in this:
                    ratios[f"{name}_vs_none"].append(this[name]["records_per_s"] / base)
    summary: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in ratios.items() if v}
    for name, runs in results.items():
        summary[f"{name}_records_per_s"] = round(
            statistics.median(r["records_per_s"] for r in runs)
        )
    if "ten" in results:
        summary["ten_reader_cpu_s"] = _median_of(results["ten"], "readers_cpu_s")
    if "paced" in results:
        summary["paced_dropped"] = [r.get("readers_dropped") for r in results["paced"]]
    if "latency" in results:
        for key in ("latency_median_ms", "latency_p99_ms"):
            summary[key] = round(statistics.median(r[key] for r in results["latency"]), 2)
    if args.json:
        print(json.dumps({"results": results, "summary": summary}))
    else:
        print("summary:", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
