"""``constellation-h5 export``: one sender's records to CSV (decoded values) or npy files.

File names carry the run id: ``run_<id>_<sender>.csv`` / ``run_<id>_<sender>_block_<kk>.npy``.
Existing files are never overwritten unless ``force`` is set.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from constellation.errors import InputFileError
from constellation.reader.h5reader import Record, RunReader

__all__ = ["export", "file_stem", "to_json"]


def file_stem(run: RunReader, sender: str) -> str:
    """``run_<run id>_<sender>`` with path separators replaced."""
    run_id = str(run.run_id).removeprefix("run_").removeprefix("run")
    return f"run_{run_id}_{sender}".replace("/", "_").replace("\\", "_")


def export(
    run: RunReader, sender: str, fmt: str, directory: Path, *, force: bool, progress: TextIO | None
) -> list[Path]:
    """Write ``sender``'s records to ``directory``; returns the written paths."""
    total = run.record_count(sender)
    stem = file_stem(run, sender)
    planned = [directory / f"{stem}.csv"] if fmt == "csv" else [directory / f"{stem}_sequence.npy"]
    existing = [p for p in [*planned, *directory.glob(f"{stem}_*")] if p.exists()]
    if existing and not force:
        raise InputFileError(existing[0], "exists already (use --force to overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    records = _progress(run.records(sender), total, progress)
    if fmt == "csv":
        return [_export_csv(records, planned[0])]
    return _export_npy(records, directory, stem)


def _progress(records: Iterable[Record], total: int, out: TextIO | None) -> Iterator[Record]:
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
    """One row per record: sequence, tags (JSON), then the decoded values of every block."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "tags", "values"])
        for record in records:
            values = [v for block in record.blocks for v in block.tolist()]
            writer.writerow([record.sequence, to_json(record.tags), *values])
    return path


def _export_npy(records: Iterable[Record], directory: Path, stem: str) -> list[Path]:
    sequences: list[int] = []
    streams: list[list[np.ndarray]] = []
    tags_path = directory / f"{stem}_tags.jsonl"
    with tags_path.open("w", encoding="utf-8") as tags_file:
        for record in records:
            sequences.append(record.sequence)
            tags_file.write(to_json(record.tags) + "\n")
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


def to_json(value: Any) -> str:
    """Compact JSON (non-JSON values as strings)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
