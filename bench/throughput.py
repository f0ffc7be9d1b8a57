"""Benchmark: RandomTransmitter -> DevNullReceiver end to end, against raw pyzmq PUSH/PULL.

For each block size, both satellites are started from their console scripts as separate
processes on 127.0.0.1 and steered by a Controller; the transmitter sends at full speed for
``--seconds`` and the receiver's ``get_data_rate`` gives records/s and MB/s (first to last
batch; the run fails if the receiver got fewer records than the EOR announces). In the same run
two plain pyzmq processes (PUSH -> PULL, one message per record made of a small msgpack header
frame and the data frame, the same random blocks) give the raw baseline, twice: with pyzmq's
defaults (``send_multipart``/``recv_multipart``: one copy on each side; ``raw_*``, ``ratio``)
and zero-copy for frames of 64 KiB and more (``raw_zc_*``, ``ratio_zc``). ``cpu_s_per_gb`` is
the CPU time of both processes per GB moved, a figure less sensitive to other load on the
host than the rates. The peak RSS of every process is sampled with psutil. Prints a table, or
with ``--json`` one JSON line per block size.

With ``--throttle 0.5`` each size is measured once more with the receiver process stopped
(SIGSTOP/SIGCONT) half of the time, so that the transmitter meets back-pressure; its RSS is
reported once per second and must stay flat.

The rates vary from run to run on a shared host: ``--repeat 3`` measures everything three times
(interleaved) and reports the median run of each.

    python bench/throughput.py [--seconds 3] [--sizes 64 1024 65536 1048576] [--json]
                               [--repeat 3] [--throttle 0.5]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from controller import Controller
from satellites.random_transmitter import random_records

__all__ = ["main", "run_ours", "run_raw"]

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent
TX, RX = "RandomTransmitter.tx", "DevNullReceiver.rx"
SIZES = (64, 1024, 64 * 1024, 1024 * 1024)
SAMPLE_S = 0.05


def _sample_rss(procs: list[subprocess.Popen[bytes]], peaks: dict[int, int]) -> None:
    for proc in procs:
        try:
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.Error:
            continue
        peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)


def _cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds used so far by ``procs`` (all their threads)."""
    total = 0.0
    for proc in procs:
        times = psutil.Process(proc.pid).cpu_times()
        total += times.user + times.system
    return total


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- our framework -----------------------------------------------------------------------------
def _start_satellite(script: str, name: str, group: str) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / script), "-g", group, "-n", name, "-i", LOOPBACK, "-l", "WARNING"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Throttle:
    """Slows a process down: SIGSTOP for ``fraction`` of every 100 ms, then SIGCONT."""

    PERIOD = 0.1

    def __init__(self, proc: subprocess.Popen[bytes], fraction: float) -> None:
        self._proc = proc
        self._fraction = fraction
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Throttle:
        if self._fraction > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._done.is_set():
                self._proc.send_signal(signal.SIGSTOP)
                self._done.wait(self.PERIOD * self._fraction)  # the duty cycle, not a sync
                self._proc.send_signal(signal.SIGCONT)
                self._done.wait(self.PERIOD * (1 - self._fraction))
        finally:
            self._proc.send_signal(signal.SIGCONT)


def run_ours(block_size: int, seconds: float, throttle: float = 0.0) -> dict[str, Any]:
    """RandomTransmitter -> DevNullReceiver as processes; the receiver's measured rates.

    With ``throttle`` the receiver is stopped for that fraction of the time (so it is slower
    than the transmitter) and the transmitter's RSS is also reported once per second.
    """
    group = f"bench_{uuid.uuid4().hex[:8]}"
    procs = [
        _start_satellite("SatelliteDevNullReceiver", "rx", group),
        _start_satellite("SatelliteRandomTransmitter", "tx", group),
    ]
    peaks: dict[int, int] = {}
    tx_rss: list[float] = []
    config = {
        "RandomTransmitter": {
            "tx": {"block_size": block_size, "_conditions": {"require_starting_after": [RX]}}
        },
        "DevNullReceiver": {"rx": {"_data": {"receive_from": [TX]}}},
    }
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([TX, RX], timeout=30)
            ctl.initialize(config)
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            ctl.start(f"bench_{block_size}")
            ctl.await_state("RUN", 30)
            cpu_start = _cpu_seconds(procs)
            t_start = time.monotonic()
            t_end = t_start + seconds
            with _Throttle(procs[0], throttle):
                while time.monotonic() < t_end:
                    _sample_rss(procs, peaks)
                    if time.monotonic() - t_start >= len(tx_rss) + 1:
                        tx_rss.append(_mb(psutil.Process(procs[1].pid).memory_info().rss))
                    time.sleep(SAMPLE_S)
            cpu = _cpu_seconds(procs) - cpu_start
            window = time.monotonic() - t_start
            ctl.stop()
            ctl.await_state("ORBIT", 120)
            _sample_rss(procs, peaks)
            rate = ctl.satellites[RX].command("get_data_rate").payload
            ctl.land()
            ctl.await_state("INIT", 30)
            ctl.shutdown()
    finally:
        _reap(procs)
    if rate["records"] != rate["eor_records"]:
        raise RuntimeError(f"records lost: {rate}")
    return {
        "records": rate["records"],
        "records_per_s": round(rate["records_per_s"]),
        "mb_per_s": round(rate["mb_per_s"], 1),
        "cpu_s_per_gb": round(cpu / (rate["mb_per_s"] * window / 1e3), 3),
        "transmitter_peak_rss_mb": _mb(peaks.get(procs[1].pid, 0)),
        "receiver_peak_rss_mb": _mb(peaks.get(procs[0].pid, 0)),
        "transmitter_rss_mb_per_s": tx_rss,
    }


# --- raw pyzmq ---------------------------------------------------------------------------------
def _raw_pull(block_size: int, zero_copy: bool) -> None:
    """Child process: bind PULL, print the port, count messages until the end marker."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    port = sock.bind_to_random_port(f"tcp://{LOOPBACK}")
    print(port, flush=True)
    copy = not zero_copy or block_size < zmq.COPY_THRESHOLD
    records = nbytes = 0
    t_first = t_last = cpu_first = 0.0
    while True:
        header, data = sock.recv_multipart(copy=copy)  # type: ignore[call-overload]
        head = header if copy else header.bytes
        if head == b"END":
            break
        if not records:
            t_first, cpu_first = time.perf_counter(), time.process_time()
        msgpack.unpackb(head)
        records += 1
        nbytes += len(data)
        t_last = time.perf_counter()
    cpu = time.process_time() - cpu_first
    result = {"records": records, "bytes": nbytes, "seconds": t_last - t_first, "cpu": cpu}
    print(json.dumps(result), flush=True)
    sock.close(0)
    ctx.term()


def _raw_push(port: int, block_size: int, seconds: float, zero_copy: bool) -> None:
    """Child process: connect PUSH and send header + data messages for ``seconds``."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(f"tcp://{LOOPBACK}:{port}")
    blocks = [blocks[0] for blocks in random_records(block_size, 1, 0)]  # as RandomTransmitter
    packb = msgpack.packb
    send, send_multipart = sock.send, sock.send_multipart
    seq = 0
    cpu_start = time.process_time()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if zero_copy:
            for data in blocks:
                seq += 1
                send(packb((seq, {})), zmq.SNDMORE)
                send(data, copy=False)
        else:
            for data in blocks:
                seq += 1
                send_multipart([packb((seq, {})), data])
    sock.send_multipart([b"END", b""])
    print(time.process_time() - cpu_start, flush=True)
    sock.close(linger=-1)
    ctx.term()


def run_raw(block_size: int, seconds: float, zero_copy: bool = False) -> dict[str, Any]:
    """Plain pyzmq PUSH -> PULL between two processes, one header + data message per record.

    By default with pyzmq's defaults (``send_multipart`` / ``recv_multipart``, which copy the
    data once on each side); with ``zero_copy`` frames of 64 KiB and more are sent and received
    without a copy (``copy=False``).
    """
    me = [sys.executable, str(Path(__file__).resolve())]
    mode = "zero-copy" if zero_copy else "copy"
    pull = subprocess.Popen(
        [*me, "--raw-pull", str(block_size), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    procs = [pull]
    peaks: dict[int, int] = {}
    try:
        assert pull.stdout is not None
        port = int(pull.stdout.readline())
        push = subprocess.Popen(
            [*me, "--raw-push", str(port), str(block_size), str(seconds), mode],
            stdout=subprocess.PIPE,
        )
        procs.append(push)
        while push.poll() is None or pull.poll() is None:
            _sample_rss(procs, peaks)
            time.sleep(SAMPLE_S)
        result = json.loads(pull.stdout.readline())
        assert push.stdout is not None
        push_cpu = float(push.stdout.readline())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        _reap(procs)
    elapsed = result["seconds"] or float("inf")
    prefix = "raw_zc_" if zero_copy else "raw_"
    row = {
        "records_per_s": round(result["records"] / elapsed),
        "mb_per_s": round(result["bytes"] / elapsed / 1e6, 1),
        "cpu_s_per_gb": round((push_cpu + result["cpu"]) / (result["bytes"] / 1e9), 3),
        "push_peak_rss_mb": _mb(peaks.get(procs[-1].pid, 0)),
        "pull_peak_rss_mb": _mb(peaks.get(pull.pid, 0)),
    }
    return {prefix + key: value for key, value in row.items()}


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key`` (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2]


def measure(block_size: int, seconds: float, repeat: int = 1) -> dict[str, Any]:
    """One row: ours and both raw variants for ``block_size``, with the bytes/s ratios.

    With ``repeat`` > 1 the three measurements are repeated, interleaved, and for each the run
    with the median bytes/s is reported.
    """
    ours_runs, raw_runs, zc_runs = [], [], []
    for _ in range(repeat):
        ours_runs.append(run_ours(block_size, seconds))
        raw_runs.append(run_raw(block_size, seconds))
        zc_runs.append(run_raw(block_size, seconds, zero_copy=True))
    ours = _median(ours_runs, "mb_per_s")
    raw = _median(raw_runs, "raw_mb_per_s")
    raw_zc = _median(zc_runs, "raw_zc_mb_per_s")
    return {
        "block_size": block_size,
        "runs": repeat,
        **ours,
        **raw,
        "ratio": round(ours["mb_per_s"] / raw["raw_mb_per_s"], 3),
        **raw_zc,
        "ratio_zc": round(ours["mb_per_s"] / raw_zc["raw_zc_mb_per_s"], 3),
    }


_COLUMNS = (
    ("block_size", "block B", "{:>9}"),
    ("records_per_s", "records/s", "{:>11,}"),
    ("mb_per_s", "MB/s", "{:>8.1f}"),
    ("cpu_s_per_gb", "CPU s/GB", "{:>8.2f}"),
    ("raw_records_per_s", "raw rec/s", "{:>11,}"),
    ("raw_mb_per_s", "raw MB/s", "{:>8.1f}"),
    ("raw_cpu_s_per_gb", "raw s/GB", "{:>8.2f}"),
    ("ratio", "ratio", "{:>6.2f}"),
    ("raw_zc_mb_per_s", "zc MB/s", "{:>8.1f}"),
    ("raw_zc_cpu_s_per_gb", "zc s/GB", "{:>8.2f}"),
    ("ratio_zc", "r_zc", "{:>6.2f}"),
    ("transmitter_peak_rss_mb", "tx RSS", "{:>7.1f}"),
    ("receiver_peak_rss_mb", "rx RSS", "{:>7.1f}"),
    ("raw_push_peak_rss_mb", "push RSS", "{:>8.1f}"),
    ("raw_pull_peak_rss_mb", "pull RSS", "{:>8.1f}"),
)


def _print_header() -> None:
    widths = [len(fmt.format(0)) for _, _, fmt in _COLUMNS]
    print(" ".join(f"{title:>{w}}" for (_, title, _), w in zip(_COLUMNS, widths, strict=True)))


def _print_row(row: dict[str, Any]) -> None:
    print(" ".join(fmt.format(row[key]) for key, _, fmt in _COLUMNS), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--raw-pull"]:
        _raw_pull(int(args_in[1]), args_in[2] == "zero-copy")
        return 0
    if args_in[:1] == ["--raw-push"]:
        _raw_push(int(args_in[1]), int(args_in[2]), float(args_in[3]), args_in[4] == "zero-copy")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="run time per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="block sizes")
    parser.add_argument("--json", action="store_true", help="one JSON line per block size")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times, report the median (default 1)"
    )
    parser.add_argument(
        "--throttle",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="then measure once more per size with the receiver stopped for this fraction of "
        "the time (back-pressure: the transmitter's RSS must stay flat)",
    )
    args = parser.parse_args(args_in)
    if not args.json:
        _print_header()
    for size in args.sizes:
        row = measure(size, args.seconds, args.repeat)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            _print_row(row)
    if args.throttle > 0:
        if not args.json:
            print(f"receiver throttled to {1 - args.throttle:.0%} of the time:")
        for size in args.sizes:
            slow = run_ours(size, args.seconds, args.throttle)
            slow = {"block_size": size, "throttle": args.throttle, **slow}
            if args.json:
                print(json.dumps(slow), flush=True)
            else:
                print(
                    f"{size:>9} {slow['records_per_s']:>11,} rec/s {slow['mb_per_s']:>8.1f} MB/s"
                    f"  tx RSS MB each second: {slow['transmitter_rss_mb_per_s']}"
                    f"  (rx peak {slow['receiver_peak_rss_mb']})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
