"""Benchmark: transmitter -> DevNullReceiver end to end, against raw pyzmq PUSH/PULL.

For each block size and each of ``--repeat`` iterations (default 3) five measurements run one
after the other, every one between two processes on 127.0.0.1 for ``--seconds``:

``ours, bytes``
    RandomTransmitter -> DevNullReceiver, started from their console scripts and steered by a
    Controller; records of one ``bytes`` block (a view of a random pool above 8 KiB) and no
    tags. The receiver's ``get_data_rate`` gives records/s and MB/s (first to last batch); the
    run fails if the receiver got fewer records than the EOR announces.
``ours, numpy + 2 tags``
    the same with the typical user call, ``send_record(array, {"dtype": "uint16", "x": n})``
    on uint16 numpy arrays (NumpyTransmitter, defined here).
``ours, reserve_record`` (blocks of 64 KiB and more)
    each record's block written in place with ``reserve_record`` (ReservedTransmitter, defined
    here), so no block is copied, as in raw zero-copy: the transmitter writes a 16-byte header
    (the record's number) into each block and leaves the rest as allocated — neither this nor
    raw zero-copy (which cycles ready-made blocks) measures making the data.
``raw 1 msg/record``, ``raw zero-copy``, ``raw batched``
    plain pyzmq processes moving the same random blocks (see ``bench/raw_pyzmq.py``): one
    message per record with pyzmq's defaults; the same zero-copy from 64 KiB; one message per
    batch of as many records as our DATA messages hold, packed with ``msgpack.packb``.

Ratios (our MB/s over a baseline's) are taken per iteration, between measurements made back to
back, and their median is reported next to each per-iteration value; rates are the medians of
the iterations. ``CPU s/GB`` is the CPU time of both processes per GB moved, less sensitive to
other load on the host than the rates; each ratio also shows, as ``(CPU x)``, the median of the
baseline's CPU s/GB over ours. Peak RSS of every process is sampled with psutil.

With ``--throttle 0.5`` each size is measured once more with the receiver process stopped
(SIGSTOP/SIGCONT) half of the time, so that the transmitter meets back-pressure; its RSS is
reported once per second and must stay flat.

    python bench/throughput.py [--seconds 3] [--sizes 64 1024 65536 1048576] [--repeat 3]
                               [--variants bytes reserved raw_zc ...] [--json] [--throttle 0.5]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _procs import LOOPBACK, finish, start, unique_group
from raw_pyzmq import batch_records, run_raw

from constellation.cli import run_satellite
from controller import Controller
from satellites.random_transmitter import RandomTransmitter

__all__ = ["NumpyTransmitter", "main", "measure", "run_ours"]

RX = "DevNullReceiver.rx"
SIZES = (64, 1024, 64 * 1024, 1024 * 1024)
SAMPLE_S = 0.05
#: Measured variants: (key, label); ours first, then the raw pyzmq baselines.
VARIANTS = (
    ("bytes", "ours, bytes"),
    ("numpy", "ours, numpy + 2 tags"),
    ("reserved", "ours, reserve_record"),
    ("raw", "raw 1 msg/record"),
    ("raw_zc", "raw zero-copy"),
    ("raw_batch", "raw batched"),
)
_RAW_MODES = {"raw": "copy", "raw_zc": "zero-copy", "raw_batch": "batch"}
#: Ratios reported: (numerator, denominator).
RATIOS = (
    *(
        (ours, base)
        for ours in ("bytes", "numpy", "reserved")
        for base in ("raw", "raw_zc", "raw_batch")
    ),
    ("numpy", "bytes"),
    ("reserved", "bytes"),
)
#: The reserved variant runs from this block size (below, one message per record is slow).
RESERVED_MIN = 64 * 1024
#: Our transmitters: variant -> (satellite type, command line option of this script or None).
_OURS = {
    "bytes": ("RandomTransmitter", None),
    "numpy": ("NumpyTransmitter", "--numpy-tx"),
    "reserved": ("ReservedTransmitter", "--reserved-tx"),
}


class NumpyTransmitter(RandomTransmitter):
    """RandomTransmitter sending uint16 numpy arrays with two tags, as user code typically does."""

    def do_initializing(self, config: Any) -> str:
        message = super().do_initializing(config)
        count = max(1, self.block_size // 2)
        pool = np.random.default_rng(self.seed).integers(
            0, 1 << 16, max(8 << 20, 2 * count), dtype=np.uint16
        )
        step = 4099 * (1 + count // 4099)
        offsets = [(i * step) % (len(pool) - count) for i in range(256)]
        self._arrays = [pool[offset : offset + count] for offset in offsets]
        return message

    def _run_full_speed(self) -> int:
        send = self.send_record
        stopped = self.stop_requested
        chunks = [self._arrays[i : i + 64] for i in range(0, len(self._arrays), 64)]
        sent = 0
        while True:
            for chunk in chunks:
                if stopped():
                    return sent
                for array in chunk:
                    sent += 1
                    send(array, {"dtype": "uint16", "x": sent})


class ReservedTransmitter(RandomTransmitter):
    """RandomTransmitter writing records in place (``reserve_record``): a 16-byte header each."""

    def _run_full_speed(self) -> int:
        reserve = self.reserve_record
        stopped = self.stop_requested
        size = self.block_size
        head = struct.Struct("<QQ")
        sent = 0
        while not stopped():
            for _ in range(64):
                record = reserve(size)
                sent += 1
                head.pack_into(record.buffer, 0, sent, size)
                record.send()
        return sent


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


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


def run_ours(
    block_size: int, seconds: float, throttle: float = 0.0, variant: str = "bytes"
) -> dict[str, Any]:
    """Transmitter -> DevNullReceiver as processes; the receiver's measured rates.

    ``variant`` (a key of ``_OURS``) selects the transmitter. With ``throttle`` the receiver
    is stopped for that fraction of the time and the transmitter's RSS is reported once per
    second.
    """
    kind, option = _OURS[variant]
    tx_cmd: str | list[str] = (
        [sys.executable, str(Path(__file__).resolve()), option]
        if option
        else "SatelliteRandomTransmitter"
    )
    group = unique_group()
    rx = start("SatelliteDevNullReceiver", "rx", group)
    tx = start(tx_cmd, "tx", group)
    peaks: dict[int, int] = {}
    tx_rss: list[float] = []
    config = {
        kind: {"tx": {"block_size": block_size, "_conditions": {"require_starting_after": [RX]}}},
        "DevNullReceiver": {"rx": {"_data": {"receive_from": [f"{kind}.tx"]}}},
    }
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([f"{kind}.tx", RX], timeout=30)
            ctl.initialize(config)
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            ctl.start(f"bench_{block_size}")
            ctl.await_state("RUN", 30)
            cpu_start = (_cpu_seconds(tx.pid), _cpu_seconds(rx.pid))
            t_start = time.monotonic()
            with _Throttle(rx.proc, throttle):
                while time.monotonic() < t_start + seconds:
                    for proc in (tx, rx):
                        rss = psutil.Process(proc.pid).memory_info().rss
                        peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)
                    if time.monotonic() - t_start >= len(tx_rss) + 1:
                        tx_rss.append(_mb(psutil.Process(tx.pid).memory_info().rss))
                    time.sleep(SAMPLE_S)  # sampling period, not a synchronisation
            cpu = (_cpu_seconds(tx.pid) - cpu_start[0], _cpu_seconds(rx.pid) - cpu_start[1])
            window = time.monotonic() - t_start
            ctl.stop()
            ctl.await_state("ORBIT", 120)
            rate = ctl.satellites[RX].command("get_data_rate").payload
            ctl.land()
            ctl.await_state("INIT", 30)
            ctl.shutdown()
    finally:
        finish((rx, tx), 20)
    if rate["records"] != rate["eor_records"]:
        raise RuntimeError(f"records lost: {rate}")
    gb = rate["mb_per_s"] * window / 1e3
    return {
        "records_per_s": round(rate["records_per_s"]),
        "mb_per_s": round(rate["mb_per_s"], 1),
        "cpu_s_per_gb": round(sum(cpu) / gb, 3),
        "tx_cpu_s_per_gb": round(cpu[0] / gb, 3),
        "rx_cpu_s_per_gb": round(cpu[1] / gb, 3),
        "send_peak_rss_mb": _mb(peaks.get(tx.pid, 0)),
        "recv_peak_rss_mb": _mb(peaks.get(rx.pid, 0)),
        "transmitter_rss_mb_per_s": tx_rss,
    }


def _run_variant(key: str, block_size: int, seconds: float) -> dict[str, Any]:
    if key in _RAW_MODES:
        return run_raw(block_size, seconds, _RAW_MODES[key])
    return run_ours(block_size, seconds, variant=key)


def _variants(block_size: int, only: list[str] | None) -> list[str]:
    """The variant keys measured at ``block_size`` (all, or those in ``only``)."""
    return [
        key
        for key, _ in VARIANTS
        if (only is None or key in only) and (key != "reserved" or block_size >= RESERVED_MIN)
    ]


def measure(
    block_size: int, seconds: float, repeat: int = 3, only: list[str] | None = None
) -> dict[str, Any]:
    """The variants (all, or ``only``) ``repeat`` times, interleaved: medians and ratios.

    Returns ``{variant: {field: median}}`` plus ``{variant}_runs`` (the MB/s of each
    iteration) and, per ratio ``a/b`` of two measured variants, ``{"median": m, "runs": [...],
    "cpu": c}``: ``c`` is the median of b's CPU s/GB over a's (what the MB/s ratio would be if
    the CPU time of both processes were all that limits; steadier under other load).
    """
    keys = _variants(block_size, only)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for _ in range(repeat):
        for key in keys:
            runs[key].append(_run_variant(key, block_size, seconds))
    row: dict[str, Any] = {
        "block_size": block_size,
        "repeat": repeat,
        "records_per_message": batch_records(block_size),
    }
    for key, results in runs.items():
        fields = [f for f, v in results[0].items() if isinstance(v, (int, float))]
        row[key] = {f: round(statistics.median(r[f] for r in results), 3) for f in fields}
        row[f"{key}_runs"] = [r["mb_per_s"] for r in results]
    for num, den in RATIOS:
        if num not in runs or den not in runs:
            continue
        ratios = [
            round(a["mb_per_s"] / b["mb_per_s"], 3) if b["mb_per_s"] else float("nan")
            for a, b in zip(runs[num], runs[den], strict=True)
        ]
        cpu = [  # CPU per GB of the baseline over ours: the same ratio where CPU is the limit
            round(b["cpu_s_per_gb"] / a["cpu_s_per_gb"], 3) if a["cpu_s_per_gb"] else float("nan")
            for a, b in zip(runs[num], runs[den], strict=True)
        ]
        row[f"{num}/{den}"] = {
            "median": round(statistics.median(ratios), 3),
            "runs": ratios,
            "cpu": round(statistics.median(cpu), 3),
        }
    return row


def format_row(row: dict[str, Any]) -> str:
    """The human-readable block of one size: one line per variant, then the ratios."""
    lines = [
        f"{row['block_size']} B blocks, {row['records_per_message']} record(s) per DATA message;"
        f" medians of {row['repeat']} iterations, MB/s of each in brackets",
        f"  {'':<22}{'records/s':>11}{'MB/s':>9}{'CPU s/GB':>9}{'tx|rx s/GB':>12}"
        f"{'RSS MiB send|recv':>19}",
    ]
    for key, label in VARIANTS:
        if key not in row:
            continue
        v = row[key]
        split = ""
        if "tx_cpu_s_per_gb" in v:
            split = f"{v['tx_cpu_s_per_gb']:.2f}|{v['rx_cpu_s_per_gb']:.2f}"
        runs = ", ".join(f"{mb:.0f}" for mb in row[f"{key}_runs"])
        lines.append(
            f"  {label:<22}{round(v['records_per_s']):>11,}{v['mb_per_s']:>9.1f}"
            f"{v['cpu_s_per_gb']:>9.2f}{split:>12}"
            f"{v['send_peak_rss_mb']:>10.1f}|{v['recv_peak_rss_mb']:<8.1f} [{runs}]"
        )
    names = dict(VARIANTS)
    for num in ("bytes", "numpy", "reserved"):
        parts = []
        for n, den in RATIOS:
            if n == num and f"{num}/{den}" in row:
                ratio = row[f"{num}/{den}"]
                each = ", ".join(f"{r:.2f}" for r in ratio["runs"])
                label = names[den].removeprefix("ours, ")
                parts.append(f"/ {label} {ratio['median']:.2f} [{each}] (CPU {ratio['cpu']:.2f})")
        if parts:
            lines.append(f"  ratio {num:<8} " + "   ".join(parts))
    return "\n".join(lines)


def _throttled(sizes: list[int], seconds: float, throttle: float, as_json: bool) -> None:
    if not as_json:
        print(f"receiver throttled to {1 - throttle:.0%} of the time:")
    for size in sizes:
        slow = {"block_size": size, "throttle": throttle, **run_ours(size, seconds, throttle)}
        if as_json:
            print(json.dumps(slow), flush=True)
        else:
            print(
                f"{size:>9} {slow['records_per_s']:>11,} rec/s {slow['mb_per_s']:>8.1f} MB/s"
                f"  tx RSS MB each second: {slow['transmitter_rss_mb_per_s']}"
                f"  (rx peak {slow['recv_peak_rss_mb']})",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``--numpy-tx ...`` runs the NumpyTransmitter satellite,
    ``--reserved-tx ...`` the ReservedTransmitter)."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--numpy-tx"]:
        return run_satellite(NumpyTransmitter, args_in[1:])
    if args_in[:1] == ["--reserved-tx"]:
        return run_satellite(ReservedTransmitter, args_in[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="run time per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="block sizes")
    parser.add_argument("--json", action="store_true", help="one JSON line per block size")
    parser.add_argument("--repeat", type=int, default=3, help="iterations (default 3)")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=[key for key, _ in VARIANTS],
        help="measure only these variants (default: all)",
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
    if any(size < 2 for size in args.sizes) or args.repeat < 1:
        parser.error("sizes must be at least 2 bytes and --repeat at least 1")
    for size in args.sizes:
        row = measure(size, args.seconds, args.repeat, args.variants)
        print(json.dumps(row) if args.json else format_row(row), flush=True)
    if args.throttle > 0:
        _throttled(args.sizes, args.seconds, args.throttle, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
