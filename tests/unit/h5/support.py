"""Helpers of the HDF5 tests: record factories, a plain-h5py reader, an old-layout converter.

``spec_read_swmr`` deliberately does not use ``constellation.reader``: it follows only
docs/file-format.md (datasets ``data``/``data_idx``/``meta``/``meta_idx``, index entries past
the last record are 0) so that it checks the file format, not our reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from satellites.h5datawriter.runfile import RunFile

WRITER = "H5DataWriter.writer"


class Rec(NamedTuple):
    """A record as the receiver hands it to RunFile."""

    sequence: int
    tags: dict[str, Any]
    blocks: list[Any]


def make_records(start: int, count: int, size: int = 64, tags: bool = True) -> list[Rec]:
    """Records whose block bytes encode their sequence number (easy to verify)."""
    records = []
    for seq in range(start, start + count):
        payload = np.full(size, seq % 251, dtype=np.uint8)
        record_tags: dict[str, Any] = {"trigger": seq, "kind": "pulse"} if tags else {}
        records.append(Rec(seq, record_tags, [payload.tobytes()]))
    return records


def new_run(directory: Path, swmr: bool, senders: list[str], **kwargs: Any) -> RunFile:
    """A RunFile for ``senders`` (expected senders in SWMR mode)."""
    return RunFile.create(
        directory,
        kwargs.pop("run_id", "run1"),
        WRITER,
        swmr=swmr,
        expected_senders=senders if swmr else None,
        **kwargs,
    )


def nest_senders(path: Path, writer: str = WRITER) -> list[str]:
    """Turn a file into the old layout of this project: sender groups inside the writer group.

    Earlier versions wrote ``/<writer>/<Type.Name>/...``; moving the root sender groups (a
    link operation, the objects stay as written) gives exactly such a file. Returns the moved.
    """
    with h5py.File(path, "r+") as h5file:
        senders = [name for name in h5file if name != writer]
        for name in senders:
            h5file.move(name, f"{writer}/{name}")
    return senders


def spec_read_swmr(group: h5py.Group) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Decode every record of a SWMR sender group with plain h5py + numpy (file-format doc)."""
    data_idx = group["data_idx"][:]
    meta_idx = group["meta_idx"][:]
    count = int(np.argmax(data_idx == 0)) if (data_idx == 0).any() else data_idx.shape[0]
    data = group["data"][: int(data_idx[count - 1])] if count else np.empty(0, np.uint8)
    meta = group["meta"][: int(meta_idx[count - 1])].tobytes() if count else b""
    records = []
    data_start = meta_start = 0
    for i in range(count):
        tags = json.loads(meta[meta_start : int(meta_idx[i])].decode("utf-8"))
        blob = data[data_start : int(data_idx[i])].tobytes()
        blocks, offset = [], 0
        for length in tags["block_lengths"]:
            blocks.append(blob[offset : offset + length])
            offset += length
        assert offset == len(blob)
        records.append((tags, blocks))
        data_start, meta_start = int(data_idx[i]), int(meta_idx[i])
    return records
