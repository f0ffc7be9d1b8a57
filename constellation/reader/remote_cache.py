"""Cache of records fetched from the data service: whole chunks, never invalidated.

Records never change once written, so a chunk of :data:`CHUNK` records that was complete when
fetched stays valid forever; only the partial chunk at the tail is never cached. Chunks live in
memory and, with a cache directory, as msgpack files ``<dir>/<run>/<sender>/<n>.msgpack``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["CHUNK", "RecordCache"]

#: Records per cached chunk (and per request).
CHUNK = 4096


class RecordCache:
    """Complete chunks of wire-format record maps, keyed by (run, sender, chunk number)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self._memory: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        self.hits = 0

    def get(self, run: str, sender: str, chunk: int) -> list[dict[str, Any]] | None:
        key = (run, sender, chunk)
        found = self._memory.get(key)
        if found is None and self.directory is not None:
            path = self._path(key)
            if path.is_file():
                found = msgpack.unpackb(path.read_bytes())
                self._memory[key] = found
        if found is not None:
            self.hits += 1
        return found

    def put(self, run: str, sender: str, chunk: int, records: list[dict[str, Any]]) -> None:
        """Keep a chunk; only complete chunks (CHUNK records) are kept."""
        if len(records) != CHUNK:
            return
        key = (run, sender, chunk)
        self._memory[key] = records
        if self.directory is not None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(msgpack.packb(records, use_bin_type=True))
            temporary.replace(path)

    def _path(self, key: tuple[str, str, int]) -> Path:
        assert self.directory is not None
        run, sender, chunk = key
        safe = hashlib.sha256(f"{run}\0{sender}".encode()).hexdigest()[:16]
        return self.directory / safe / f"{chunk}.msgpack"
