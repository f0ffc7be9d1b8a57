"""Benchmark: RandomTransmitter -> H5DataWriter end to end, against DevNullReceiver and plain h5py.

Each repeat (``--repeats``, default 3) runs, one after the other, with satellite processes on
127.0.0.1 and the transmitter at full speed for ``--seconds`` (default 3):

- ``devnull``: RandomTransmitter -> DevNullReceiver (what the data path delivers, nothing stored);
- ``swmr`` and ``normal``: RandomTransmitter -> H5DataWriter in the two file layouts.

Rates are records stored (received, for devnull) / (RUN time + time from ``stop`` until both are
in ORBIT again). CPU per record is the CPU time (user + system, all threads) each process used
from RUN until both are back in ORBIT, per record stored: less sensitive to other load on the
host than the rates. Two plain-h5py baselines are timed in the same process, on as many records as
the writer stored (normal: at most ``--baseline-records``): ``plain-h5py append`` writes the same
bytes to one resizable dataset in batches (what SWMR mode is compared with); two create the
normal layout's objects (a group and its ``block_00`` per record, one process, no network):
``plain-h5py groups`` with high-level h5py (``create_group`` + ``create_dataset``), ``plain-h5py
low-level`` with h5py's low-level API as HDF5 allows it at its best without templates (compact
layout, property lists, type and dataspace made once, no time stamps). Printed: every repeat,
then the medians and the ratios of the medians; ``--json`` prints the whole result as one JSON
object instead.

    python bench/writer.py [--seconds 3] [--block-size 1024] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _procs import LOOPBACK, cpu_seconds, finish, rss, start, unique_group
from h5py import h5d, h5g, h5p, h5s, h5t

from constellation.reader import open_run
from controller import Controller

TX = "RandomTransmitter.tx"
RECEIVERS = {"devnull": "DevNullReceiver.rx", "swmr": "H5DataWriter.w", "normal": "H5DataWriter.w"}
#: Issue targets: SWMR stores >= 0.8x what DevNullReceiver receives; normal >= 50k records/s
#: (1 KiB) with ``stop`` done within 2 s.
SWMR_TARGET_RATIO = 0.8
NORMAL_TARGET_RATE = 50_000
NORMAL_TARGET_STOP_S = 2.0


def _config(mode: str, block_size: int, out: Path) -> dict[str, Any]:
    receiver = RECEIVERS[mode]
    tx = {"block_size": block_size, "_conditions": {"require_starting_after": [receiver]}}
    if mode == "devnull":
        return {"RandomTransmitter": {"tx": tx}, "DevNullReceiver": {"rx": {}}}
    writer = {
        "output_directory": str(out),
        "allow_concurrent_reading": mode == "swmr",
        "_data": {"receive_from": [TX]},
    }
    return {"RandomTransmitter": {"tx": tx}, "H5DataWriter": {"w": writer}}


def run_mode(mode: str, seconds: float, block_size: int, out: Path) -> dict[str, Any]:
    """One full-speed run of ``mode``; records, rates, stop time and peak RSS."""
    group = unique_group()
    receiver = RECEIVERS[mode]
    script = "SatelliteDevNullReceiver" if mode == "devnull" else "SatelliteH5DataWriter"
    procs = [
        start(script, receiver.split(".")[1], group),
        start("SatelliteRandomTransmitter", "tx", group),
    ]
    peaks = [0, 0]
    run_id = f"{mode}_{uuid.uuid4().hex[:6]}"
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([TX, receiver], timeout=30)
            ctl.initialize(_config(mode, block_size, out))
            ctl.await_state("INIT", 30)
            ctl.launch()
            ctl.await_state("ORBIT", 30)
            ctl.start(run_id)
            ctl.await_state("RUN", 30)
            cpu_start = [cpu_seconds(proc) for proc in procs]
            t_run = time.monotonic()
            while time.monotonic() - t_run < seconds:
                peaks = [max(p, rss(proc)) for p, proc in zip(peaks, procs, strict=True)]
                time.sleep(0.1)
            t_stop = time.monotonic()
            ctl.stop()
            ctl.await_state("ORBIT", 120)
            t_orbit = time.monotonic()
            cpu = [cpu_seconds(p) - t0 for p, t0 in zip(procs, cpu_start, strict=True)]
            peaks = [max(p, rss(proc)) for p, proc in zip(peaks, procs, strict=True)]
            rate = ctl.satellites[receiver].command("get_data_rate") if mode == "devnull" else None
            ctl.land()
            ctl.await_state("INIT", 30)
            ctl.shutdown()
    finally:
        finish(procs)
    if rate is not None:
        stored, sent = int(rate.payload["records"]), int(rate.payload["eor_records"])
    else:
        path = out / f"data_{run_id}.h5"
        with open_run(path) as run:
            stored = run.record_count(TX)
            eor = run.eor(TX)
        sent = int(eor["run_metadata"]["data_records"]) if eor else -1
        path.unlink()
    total = t_orbit - t_run
    return {
        "mode": mode,
        "records_sent": sent,
        "records_stored": stored,
        "lost": sent - stored,
        "run_s": round(t_stop - t_run, 2),
        "stop_s": round(t_orbit - t_stop, 2),
        "records_per_s": round(stored / total),
        "mb_per_s": round(stored * block_size / total / 1e6, 1),
        "receiver_cpu_us_per_record": round(cpu[0] / max(stored, 1) * 1e6, 2),
        "transmitter_cpu_us_per_record": round(cpu[1] / max(stored, 1) * 1e6, 2),
        "receiver_peak_rss_mb": round(peaks[0] / 2**20, 1),
        "transmitter_peak_rss_mb": round(peaks[1] / 2**20, 1),
    }


def plain_append(records: int, block_size: int, out: Path, batch: int = 128) -> float:
    """Records/s of plain h5py appending ``records`` blocks to one dataset, ``batch`` at a time."""
    data = np.random.default_rng(0).integers(0, 256, batch * block_size, dtype=np.uint8)
    path = out / f"append_{uuid.uuid4().hex[:6]}.h5"
    batches = max(1, records // batch)
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        dset = f.create_dataset(
            "data", (0,), maxshape=(None,), dtype=np.uint8, chunks=(256 * 1024,)
        )
        size = 0
        for _ in range(batches):
            dset.resize((size + data.size,))
            dset[size:] = data
            size += data.size
    elapsed = time.perf_counter() - t0
    path.unlink()
    return batches * batch / elapsed


def plain_groups(records: int, block_size: int, out: Path) -> float:
    """Records/s of plain h5py creating the normal layout: one group + one dataset per record."""
    blocks = np.random.default_rng(0).integers(0, 256, (256, block_size), dtype=np.uint8)
    path = out / f"groups_{uuid.uuid4().hex[:6]}.h5"
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver=("v108", "latest")) as f:
        sender = f.create_group(TX)
        for seq in range(1, records + 1):
            record = sender.create_group(f"data_{seq:09d}")
            record.create_dataset("block_00", data=blocks[seq % 256])
    elapsed = time.perf_counter() - t0
    path.unlink()
    return records / elapsed


def plain_lowlevel(records: int, block_size: int, out: Path) -> float:
    """Records/s of plain h5py creating the same objects with its low-level API, tuned: group and
    compact dataset per record (property lists, type and dataspace made once, no time stamps)."""
    blocks = np.random.default_rng(0).integers(0, 256, (256, block_size), dtype=np.uint8)
    path = out / f"lowlevel_{uuid.uuid4().hex[:6]}.h5"
    gcpl = h5p.create(h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_layout(h5d.COMPACT if block_size <= 16 * 1024 else h5d.CONTIGUOUS)
    dcpl.set_fill_time(h5d.FILL_TIME_NEVER)
    dcpl.set_obj_track_times(False)
    space, tid = h5s.create_simple((block_size,)), h5t.NATIVE_UINT8
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver=("v108", "latest")) as f:
        sender = f.create_group(TX).id
        for seq in range(1, records + 1):
            record = h5g.create(sender, b"data_%09d" % seq, gcpl=gcpl)
            dset = h5d.create(record, b"block_00", tid, space, dcpl=dcpl)
            dset.write(h5s.ALL, h5s.ALL, blocks[seq % 256], mtype=tid)
    elapsed = time.perf_counter() - t0
    path.unlink()
    return records / elapsed


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(row[key] for row in rows))


def summarize(repeats: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the repeats of every figure, and the ratios and verdicts of the medians."""
    medians: dict[str, dict[str, Any]] = {}
    for mode in repeats[0]:
        rows = [rep[mode] for rep in repeats]
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
        medians[mode] = {"mode": mode, **{key: _median(rows, key) for key in keys}}
    summary: dict[str, Any] = {"medians": medians}
    devnull, swmr, normal = (medians.get(m) for m in ("devnull", "swmr", "normal"))
    if swmr and devnull:
        ratio = swmr["records_per_s"] / devnull["records_per_s"]
        summary["swmr_vs_devnull"] = round(ratio, 3)
        summary["swmr_ok"] = ratio >= SWMR_TARGET_RATIO
    if swmr and "plain_append_records_per_s" in swmr:
        summary["swmr_vs_plain_append"] = round(
            swmr["records_per_s"] / swmr["plain_append_records_per_s"], 3
        )
    if normal:
        summary["normal_ok"] = (
            normal["records_per_s"] >= NORMAL_TARGET_RATE
            and normal["stop_s"] <= NORMAL_TARGET_STOP_S
        )
        for key in ("groups", "lowlevel"):
            if f"plain_{key}_records_per_s" in normal:
                summary[f"normal_vs_plain_{key}"] = round(
                    normal["records_per_s"] / normal[f"plain_{key}_records_per_s"], 3
                )
    return summary


def _line(row: dict[str, Any]) -> str:
    text = (
        f"{row['mode']:>8}: {row['records_per_s']:>9,.0f} records/s ({row['mb_per_s']} MB/s), "
        f"stored {row['records_stored']:,.0f} of {row['records_sent']:,.0f} "
        f"(lost {row['lost']:,.0f}), run {row['run_s']} s, stop {row['stop_s']} s, "
        f"peak RSS receiver {row['receiver_peak_rss_mb']} MB / transmitter "
        f"{row['transmitter_peak_rss_mb']} MB; CPU per record receiver "
        f"{row['receiver_cpu_us_per_record']} us / transmitter "
        f"{row['transmitter_cpu_us_per_record']} us"
    )
    for key, label in (
        ("plain_append_records_per_s", "plain-h5py append"),
        ("plain_groups_records_per_s", "plain-h5py groups"),
        ("plain_lowlevel_records_per_s", "plain-h5py low-level"),
    ):
        if key in row:
            text += f"; baseline {label}: {row[key]:,.0f} records/s"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["devnull", "swmr", "normal"])
    parser.add_argument("--baseline-records", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    repeats: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench_writer_") as tmp:
        out = Path(tmp)
        for repeat in range(args.repeats):
            results: dict[str, dict[str, Any]] = {}
            for mode in args.modes:
                row = run_mode(mode, args.seconds, args.block_size, out)
                stored = max(int(row["records_stored"]), 1000)
                if mode == "swmr":
                    row["plain_append_records_per_s"] = round(
                        plain_append(stored, args.block_size, out)
                    )
                elif mode == "normal":
                    count = min(stored, args.baseline_records)
                    row["plain_groups_records_per_s"] = round(
                        plain_groups(count, args.block_size, out)
                    )
                    row["plain_lowlevel_records_per_s"] = round(
                        plain_lowlevel(count, args.block_size, out)
                    )
                results[mode] = row
                if not args.json:
                    print(f"repeat {repeat + 1} {_line(row)}", flush=True)
            repeats.append(results)
    summary = summarize(repeats)
    if args.json:
        print(json.dumps({"repeats": repeats, **summary}))
        return 0
    print(f"medians of {args.repeats} repeats, {args.block_size} B records:")
    for row in summary["medians"].values():
        print(f"  {_line(row)}")
    for key in (
        "swmr_vs_devnull",
        "swmr_vs_plain_append",
        "normal_vs_plain_groups",
        "normal_vs_plain_lowlevel",
    ):
        if key in summary:
            print(f"  {key}: {summary[key]}")
    if "swmr_ok" in summary:
        print(f"  SWMR >= {SWMR_TARGET_RATIO}x devnull: {'ok' if summary['swmr_ok'] else 'LOW'}")
    if "normal_ok" in summary:
        verdict = "ok" if summary["normal_ok"] else "LOW"
        print(
            f"  normal >= {NORMAL_TARGET_RATE:,} records/s and stop <= "
            f"{NORMAL_TARGET_STOP_S} s: {verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
