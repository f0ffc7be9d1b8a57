"""Benchmark of the H5DataWriter file-format layer: RunFile records/s in both layouts vs raw h5py.

For each mode, RunFile writes N records of one block (1 KiB by default) in batches, including
file creation, BOR, EOR and close; the raw baseline appends the same bytes to one resizable
uint8 dataset with plain h5py (one resize and one slice write per batch). Prints a table, or with
``--json`` one JSON line per mode. With ``--uniform`` the batches reach RunFile as the receiver
hands them over (``UniformBatch`` where the wire allows, ``write_uniform``)::

    python bench/h5_layouts.py [--records 100000] [--size 1024] [--batch 1000] [--uniform] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from constellation.protocol.cdtp2 import DataRecord, encode_data_frame
from constellation.protocol.cdtp2_uniform import UniformBatch, decode_uniform
from satellites.h5datawriter.compression import single_blosc_thread
from satellites.h5datawriter.runfile import RunFile

__all__ = ["main"]

_SENDER = "RandomTransmitter.bench"
_MB = 1e6
#: Issue targets for 1 KiB records (records/s).
TARGETS = {"normal": 50_000, "swmr": 100_000}


class Rec(NamedTuple):
    """A record as the receiver hands it over."""

    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def make_records(count: int, size: int, tags: str) -> list[Rec]:
    """Records with ``bytes`` blocks cut from a random pool (as the receiver hands them over)."""
    pool = np.random.default_rng(0).integers(0, 256, 1 << 22, dtype=np.uint8).data
    span = len(pool) - size
    records = []
    for seq in range(1, count + 1):
        offset = (seq * 4099) % span
        record_tags: dict[str, Any] = {}
        if tags == "const":
            record_tags = {"dtype": "uint8", "source": "adc0"}
        elif tags == "some":
            record_tags = {"dtype": "uint8", "trigger": seq}
        records.append(Rec(seq, record_tags, [bytes(pool[offset : offset + size])]))
    return records


def _batches(records: Sequence[Rec], batch: int) -> list[Sequence[Rec]]:
    return [records[i : i + batch] for i in range(0, len(records), batch)]


def _as_received(batches: list[Sequence[Rec]]) -> list[Sequence[Rec] | UniformBatch]:
    """The batches as the receiver hands them over: uniform batches where the wire allows."""
    out: list[Sequence[Rec] | UniformBatch] = []
    for batch in batches:
        message = decode_uniform(encode_data_frame(_SENDER, [DataRecord(*r) for r in batch]))
        out.append(batch if message is None else message.batch)
    return out


def time_runfile(directory: Path, mode: str, records: Sequence[Rec], args: Any) -> float:
    """Seconds for a whole run through RunFile (create ... close)."""
    batches: list[Any] = _batches(records, args.batch)
    if args.uniform:
        batches = _as_received(batches)
    run_id = f"{mode}_{time.monotonic_ns()}"
    start = time.perf_counter()
    run = RunFile.create(
        directory,
        run_id,
        "H5DataWriter.bench",
        swmr=mode == "swmr",
        expected_senders=[_SENDER],
        compression=args.compression,
    )
    run.begin_sender(_SENDER, {}, {"block_size": args.size})
    for batch in batches:
        if isinstance(batch, UniformBatch):
            run.write_uniform(_SENDER, [batch])
        else:
            run.write_records(_SENDER, batch)
    run.end_sender(_SENDER, {}, {"run_id": run_id, "data_records": len(records)})
    run.close()
    elapsed = time.perf_counter() - start
    run.path.unlink()
    return elapsed


def time_raw(directory: Path, records: Sequence[Rec], args: Any) -> float:
    """Seconds for plain h5py appending the same bytes to one dataset."""
    batches = _batches(records, args.batch)
    path = directory / f"raw_{time.monotonic_ns()}.h5"
    start = time.perf_counter()
    with h5py.File(path, "w", libver=("v110", "latest")) as h5file:
        dset = h5file.create_dataset(
            "data", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(256 * 1024,)
        )
        size = 0
        for batch in batches:
            chunk = np.frombuffer(b"".join(b for rec in batch for b in rec.blocks), np.uint8)
            dset.resize((size + chunk.shape[0],))
            dset[size:] = chunk
            size += chunk.shape[0]
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def run_mode(directory: Path, mode: str, args: Any) -> dict[str, Any]:
    count = args.records if mode == "swmr" else args.normal_records or args.records
    records = make_records(count, args.size, args.tags)
    nbytes = count * args.size
    ours = min(time_runfile(directory, mode, records, args) for _ in range(args.repeat))
    raw = min(time_raw(directory, records, args) for _ in range(args.repeat))
    return {
        "mode": mode,
        "records": count,
        "record_bytes": args.size,
        "batch": args.batch,
        "compression": args.compression or "none",
        "records_per_s": round(count / ours),
        "mb_per_s": round(nbytes / ours / _MB, 1),
        "raw_mb_per_s": round(nbytes / raw / _MB, 1),
        "ratio": round(raw / ours, 3),
        "target_records_per_s": TARGETS.get(mode),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'mode':8} {'records':>9} {'records/s':>11} {'MB/s':>8} {'raw MB/s':>9} "
        f"{'ratio':>7} {'target/s':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        target = row["target_records_per_s"]
        verdict = "" if target is None else ("ok" if row["records_per_s"] >= target else "LOW")
        lines.append(
            f"{row['mode']:8} {row['records']:>9} {row['records_per_s']:>11,} "
            f"{row['mb_per_s']:>8.1f} {row['raw_mb_per_s']:>9.1f} {row['ratio']:>7.3f} "
            f"{target or '-':>9} {verdict}"
        )
    lines.append("ratio = RunFile MB/s / raw h5py MB/s (one dataset, same bytes, same batches)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per mode")
    parser.add_argument("--normal-records", type=int, default=0, help="override for normal mode")
    parser.add_argument("--size", type=int, default=1024, help="block bytes per record")
    parser.add_argument("--batch", type=int, default=1000, help="records per write_records")
    parser.add_argument("--modes", default="normal,swmr", help="comma separated: normal,swmr")
    parser.add_argument(
        "--tags",
        choices=("none", "const", "some"),
        default="none",
        help="record tags: none, two constant ones, or dtype plus a per-record trigger number",
    )
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="hand batches over as the receiver does: uniform batches where the wire allows",
    )
    parser.add_argument("--compression", default=None, help="e.g. blosc2-lz4, zstd")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    parser.add_argument("--dir", type=Path, default=None, help="output directory (tmp)")
    parser.add_argument("--json", action="store_true", help="one JSON line per mode")
    args = parser.parse_args(argv)
    single_blosc_thread()  # as the writer's launcher does
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = [run_mode(Path(tmp), mode.strip(), args) for mode in args.modes.split(",")]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
