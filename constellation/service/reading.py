"""Blocking file reads of the data service (run in a worker thread, never on the event loop).

Record wire format (docs/data-service.md): a map ``sequence`` (int), ``tags`` (map), ``blocks``
(list of bytes) and ``dtypes`` (numpy dtype string per block, e.g. ``"<u2"``), so a client
rebuilds the same typed arrays as :func:`constellation.reader.open_run` gives.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from constellation.reader.h5reader import Record, RunReader, open_run
from constellation.service.slicing import BadRequest, parse_slice
from constellation.service.wire import pack_records

__all__ = ["FollowState", "details", "encode_record", "npy_slice", "record_slice"]


def encode_record(record: Record) -> dict[str, Any]:
    return {
        "sequence": record.sequence,
        "tags": record.tags,
        "blocks": [block.tobytes() for block in record.blocks],
        "dtypes": [block.dtype.str for block in record.blocks],
    }


def details(path: Path) -> dict[str, Any]:
    """Writer attributes and per sender BOR, EOR, record count and layout."""
    with open_run(path) as run:
        return {
            "writers": {writer: run.writer_info(writer) for writer in run.writers},
            "mode": run.mode,
            "growing": run.swmr_read,
            "senders": {
                sender: {
                    "bor": run.bor(sender),
                    "eor": run.eor(sender),
                    "records": run.record_count(sender),
                    "layout": run.layout(sender),
                }
                for sender in run.senders
            },
        }


def _slice(run: RunReader, sender: str, start: str | None, stop: str | None) -> list[Record]:
    count = run.record_count(sender)
    first, last = parse_slice(start, stop, count)
    records = []
    for record in run.records(sender, start=first):
        if len(records) >= last - first:
            break
        records.append(record)
    return records


def record_slice(path: Path, sender: str, start: str | None, stop: str | None) -> bytes:
    """Records ``[start, stop)`` of ``sender`` as a msgpack array of record maps."""
    with open_run(path) as run:
        first, last = parse_slice(start, stop, run.record_count(sender))
        return pack_records(run.raw_records(sender, first, last), last - first)


def npy_slice(path: Path, sender: str, start: str | None, stop: str | None) -> bytes:
    """Records ``[start, stop)`` as one ``.npy`` array (records, blocks, values)."""
    with open_run(path) as run:
        records = _slice(run, sender, start, stop)
    shapes = {tuple((b.dtype.str, b.shape) for b in record.blocks) for record in records}
    if len(shapes) > 1:
        raise BadRequest(400, "records of different shapes: use the msgpack format")
    array = np.array([np.stack(record.blocks) for record in records]) if records else np.empty(0)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class FollowState:
    """One client following one sender; :meth:`poll` gives the records written since.

    The file is opened for each poll that finds it changed (size or mtime) and closed again,
    so no handle outlives a poll: HDF5 shares an open file between the handles of a process,
    and a handle kept open would make every later open in the server see the file as it was
    (frozen record counts, no EOR) and keep the file open after a client went away.
    """

    def __init__(self, path: Path, sender: str, start: int) -> None:
        self.path = path
        with open_run(path) as run:
            try:
                self.sender = run.senders[run.senders.index(sender)]
            except ValueError:
                run.record_count(sender)  # raises KeyError naming the sender (case folding)
                self.sender = sender
        self.position = start
        self._seen: tuple[int, int] | None = None

    def poll(self, limit: int = 10_000) -> tuple[list[str], bool]:
        """SSE event texts of records written since the last poll; True once the run ended."""
        stat = self.path.stat()
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen == self._seen:
            return [], False
        events: list[str] = []
        with open_run(self.path) as run:
            count = run.record_count(self.sender)
            if self.position < count:
                for record in run.records(self.sender, start=self.position):
                    events.append(_sse("record", record))
                    self.position += 1
                    if self.position >= count or len(events) >= limit:
                        break
            ended = self.position >= count and (
                run.eor(self.sender) is not None or not run.swmr_read
            )
        if self.position >= count:  # all of this version read: wait for the file to change
            self._seen = seen
        return events, ended


def _sse(event: str, record: Record) -> str:
    payload = encode_record(record)
    payload["blocks"] = [base64.b64encode(block).decode() for block in payload["blocks"]]
    return f"event: {event}\ndata: {json.dumps(payload, default=str)}\n\n"
