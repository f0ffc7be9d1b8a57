"""The ``constellation-h5`` command: summary, export and dump of H5DataWriter files.

Built on :mod:`constellation.reader.h5reader` (h5py and numpy only)::

    constellation-h5 summary data_run1.h5
    constellation-h5 export data_run1.h5 --sender RandomTransmitter.t1 --format npy -o out/
    constellation-h5 export data_run1.h5 --sender RandomTransmitter.t1 --format csv -o out/
    constellation-h5 dump data_run1.h5 --sender RandomTransmitter.t1 --limit 5

``export --format npy`` writes, per block index ``k``, ``<sender>_block_<kk>.npy``: a 2-D array
(records x values) when every record's block ``k`` has the same length and dtype, otherwise the
values of all records concatenated plus ``<sender>_block_<kk>_offsets.npy`` (end offset of each
record, like ``data_idx``). ``<sender>_sequence.npy`` holds the sequence numbers and
``<sender>_tags.jsonl`` one JSON line of tags per record. ``--format csv`` writes
``<sender>.csv`` with columns ``sequence``, ``tags`` (JSON) and ``block_lengths`` (JSON list).
Exit status: 0 on success, 1 for a missing or unreadable file or an unknown sender, 2 for usage.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from constellation.errors import InputFileError
from constellation.reader.h5reader import Record, RunReader, open_run

__all__ = ["main"]

_PROG = "constellation-h5"
_CONDITIONS = {0: "GOOD", 1: "TAINTED", 2: "INCOMPLETE", 4: "INTERRUPTED", 8: "ABORTED"}
_CONDITIONS[0x10] = "DEGRADED"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``constellation-h5``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with open_run(args.file) as run:
            return int(args.handler(run, args))
    except FileNotFoundError:
        return _fail(f"file not found: {args.file}")
    except KeyError as exc:
        return _fail(str(exc.args[0]) if exc.args else "unknown key")
    except InputFileError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{args.file}: {exc}")


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROG, description="Inspect H5DataWriter files.")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="writers, senders, record counts, BOR/EOR")
    summary.add_argument("file", type=Path)
    summary.set_defaults(handler=_summary)
    export = commands.add_parser("export", help="export one sender's records (npy or csv)")
    export.add_argument("file", type=Path)
    export.add_argument("--sender", "-s", required=True, help="sender canonical name")
    export.add_argument("--format", "-f", choices=("npy", "csv"), default="npy")
    export.add_argument("--output", "-o", type=Path, default=Path("."), help="output directory")
    export.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    export.set_defaults(handler=_export)
    dump = commands.add_parser("dump", help="print records of one sender")
    dump.add_argument("file", type=Path)
    dump.add_argument("--sender", "-s", required=True, help="sender canonical name")
    dump.add_argument("--limit", "-n", type=int, default=10, help="records to print (0 = all)")
    dump.add_argument("--start", type=int, default=0, help="first record position (0-based)")
    dump.set_defaults(handler=_dump)
    return parser


# --- summary --------------------------------------------------------------------------------------
def _summary(run: RunReader, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    print(f"file:    {run.path}", file=out)
    print(f"run:     {run.run_id}", file=out)
    print(f"mode:    {run.mode}", file=out)
    for writer in run.writers:
        info = run.writer_info(writer)
        details = ", ".join(f"{key}={value}" for key, value in info.items())
        print(f"writer:  {writer} ({details})", file=out)
    total_records = total_bytes = 0
    for sender in run.senders:
        stats = _sender_stats(run, sender)
        total_records += stats["records"]
        total_bytes += stats["bytes"]
        _print_sender(sender, stats, out)
    print(f"total:   {total_records} records, {_size(total_bytes)}", file=out)
    return 0


def _sender_stats(run: RunReader, sender: str) -> dict[str, Any]:
    stats = run.stats(sender)
    return {
        "records": stats.records,
        "bytes": stats.data_bytes,
        "first": stats.first_sequence,
        "last": stats.last_sequence,
        "layout": run.layout(sender),
        "bor": bool(any(run.bor(sender).values())),
        "eor": run.eor(sender),
    }


def _print_sender(sender: str, stats: dict[str, Any], out: TextIO) -> None:
    span = "-" if stats["first"] is None else f"{stats['first']}..{stats['last']}"
    print(f"sender:  {sender} [{stats['layout']}]", file=out)
    print(f"  records:   {stats['records']} (sequence {span}), {_size(stats['bytes'])}", file=out)
    print(f"  BOR:       {'yes' if stats['bor'] else 'empty'}", file=out)
    eor = stats["eor"]
    if eor is None:
        print("  EOR:       not written (yet)", file=out)
        return
    metadata = eor.get("run_metadata", {})
    print(f"  EOR:       condition {_condition(metadata)}", file=out)
    for key in ("run_id", "time_start", "time_end", "data_records"):
        if key in metadata:
            print(f"    {key}: {metadata[key]}", file=out)


def _condition(metadata: dict[str, Any]) -> str:
    code = metadata.get("condition_code")
    name = metadata.get("condition")
    if isinstance(code, int):
        flags = [text for bit, text in _CONDITIONS.items() if bit and code & bit] or ["GOOD"]
        return f"{name or '|'.join(flags)} (code {code})"
    return str(name) if name is not None else "unknown"


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit} ({nbytes} B)"


# --- export ---------------------------------------------------------------------------------------
def _export(run: RunReader, args: argparse.Namespace) -> int:
    total = run.record_count(args.sender)
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.sender.replace("/", "_")
    records = _progress(run.records(args.sender), total, None if args.quiet else sys.stderr)
    if args.format == "csv":
        paths = [_export_csv(records, args.output / f"{stem}.csv")]
    else:
        paths = _export_npy(records, args.output, stem)
    for path in paths:
        print(path)
    return 0


def _progress(records: Iterable[Record], total: int, out: TextIO | None) -> Iterator[Record]:
    """Pass records through, reporting progress to ``out`` about twice a second."""
    done = 0
    next_report = time.monotonic() + 0.5
    for record in records:
        yield record
        done += 1
        if out is not None and time.monotonic() >= next_report:
            print(f"exported {done}/{total} records", file=out, flush=True)
            next_report += 0.5
    if out is not None:
        print(f"exported {done}/{total} records", file=out, flush=True)


def _export_csv(records: Iterable[Record], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "tags", "block_lengths"])
        for record in records:
            lengths = [int(block.nbytes) for block in record.blocks]
            writer.writerow([record.sequence, _json(record.tags), json.dumps(lengths)])
    return path


def _export_npy(records: Iterable[Record], directory: Path, stem: str) -> list[Path]:
    sequences: list[int] = []
    streams: list[list[np.ndarray]] = []
    tags_path = directory / f"{stem}_tags.jsonl"
    with tags_path.open("w", encoding="utf-8") as tags_file:
        for record in records:
            sequences.append(record.sequence)
            tags_file.write(_json(record.tags) + "\n")
            for index, block in enumerate(record.blocks):
                while len(streams) <= index:
                    streams.append([])
                streams[index].append(block)
    paths = [directory / f"{stem}_sequence.npy", tags_path]
    np.save(paths[0], np.asarray(sequences, dtype=np.int64))
    for index, blocks in enumerate(streams):
        paths.extend(_save_stream(directory / f"{stem}_block_{index:02d}", blocks))
    return paths


def _save_stream(base: Path, blocks: list[np.ndarray]) -> list[Path]:
    """2-D array when all blocks share length and dtype, else values plus offsets."""
    path = base.with_name(base.name + ".npy")
    if len({(b.dtype.str, b.shape) for b in blocks}) == 1:
        np.save(path, np.stack(blocks))
        return [path]
    dtypes = {b.dtype.str for b in blocks}
    values = [b if len(dtypes) == 1 else b.view(np.uint8) for b in blocks]
    offsets = np.cumsum([v.shape[0] for v in values], dtype=np.int64)
    np.save(path, np.concatenate(values) if values else np.empty(0, np.uint8))
    offsets_path = base.with_name(base.name + "_offsets.npy")
    np.save(offsets_path, offsets)
    return [path, offsets_path]


# --- dump -----------------------------------------------------------------------------------------
def _dump(run: RunReader, args: argparse.Namespace) -> int:
    total = run.record_count(args.sender)
    print(f"{args.sender}: {total} records")
    for shown, record in enumerate(run.records(args.sender, start=args.start)):
        if args.limit and shown >= args.limit:
            break
        print(f"#{record.sequence} tags={_json(record.tags)}")
        for index, block in enumerate(record.blocks):
            print(f"  block_{index:02d} {block.dtype}[{block.shape[0]}]: {_preview(block)}")
    return 0


def _preview(block: np.ndarray, count: int = 8) -> str:
    values = " ".join(str(value) for value in block[:count].tolist())
    return values + (" ..." if block.shape[0] > count else "")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


if __name__ == "__main__":
    raise SystemExit(main())
