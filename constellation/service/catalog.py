"""The run catalog: one SQLite row per run file of a directory, kept current by stat.

The database (``.constellation-runs.sqlite`` beside the runs; rebuilt when deleted) holds per
file: run id, name, size, mtime, start/end time, condition, senders with record counts, a digest
of the BOR configurations, the sha256 of closed files, text of the user tags, the error of an
unreadable file, and ``growing``. Operator comments live in their own table (by run id), so a
rescan keeps them. :meth:`RunCatalog.refresh` stats the directory and rescans only files that
are new or whose size or mtime changed (:func:`plan`), and those last read through a view that
another handle of this process held (possibly stale, so never final); rows of vanished files
are dropped. A database written before these rules is rescanned once.

Search (:meth:`RunCatalog.runs` ``where``): :mod:`constellation.service.catalog_search` checks
the keys and values (bad ones raise UsageError); values are bound parameters, no SQL text comes
from outside.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from constellation.errors import UsageError
from constellation.service.catalog_search import WHERE_KEYS, parse_search
from constellation.service.scanner import FileStat, list_files, scan_file
from constellation.service.slicing import run_id_of

__all__ = ["CATALOG_NAME", "WHERE_KEYS", "RunCatalog", "plan"]

CATALOG_NAME = ".constellation-runs.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    file TEXT PRIMARY KEY, run_id TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
    start TEXT, end TEXT, condition TEXT, senders TEXT, records INTEGER, growing INTEGER,
    config_digest TEXT, sha256 TEXT, tags_text TEXT, error TEXT, scanned REAL, settled INTEGER);
CREATE INDEX IF NOT EXISTS runs_run_id ON runs(run_id);
CREATE TABLE IF NOT EXISTS comments (run_id TEXT PRIMARY KEY, text TEXT NOT NULL);
"""
#: Version of the rows (``PRAGMA user_version``): a database of an older one is rescanned
#: (its rows may hold views of growing files that were never rescanned; comments are kept).
_ROWS_VERSION = 2
_COLUMNS = (
    "file, run_id, size, mtime_ns, start, end, condition, senders, records, growing, "
    "config_digest, sha256, tags_text, error"
)


def plan(
    known: Mapping[str, tuple[int, int] | None], present: Mapping[str, FileStat]
) -> tuple[list[str], list[str]]:
    """Files to (re)scan and rows to drop, from the rows' and the directory's (size, mtime).

    A row known as None (not settled: read through a possibly stale view) is always rescanned.
    """
    scan = sorted(
        name for name, stat in present.items() if known.get(name) != (stat.size, stat.mtime_ns)
    )
    drop = sorted(name for name in known if name not in present)
    return scan, drop


class RunCatalog:
    """The catalog of the run files in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | Path, database: str | Path | None = None) -> None:
        self.directory = Path(directory).resolve()
        if not self.directory.is_dir():
            raise UsageError(f"run directory {self.directory} does not exist")
        self.database = Path(database) if database else self.directory / CATALOG_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.database, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if self._db.execute("PRAGMA user_version").fetchone()[0] < _ROWS_VERSION:
            self._db.executescript(
                f"DROP TABLE IF EXISTS runs; PRAGMA user_version = {_ROWS_VERSION};"
            )
        self._db.executescript(_SCHEMA)
        self._refreshed = float("-inf")

    # --- keeping current --------------------------------------------------------------------
    def refresh(self) -> int:
        """Rescan new and changed files, drop vanished ones; returns the files rescanned."""
        with self._lock:
            known = {
                row["file"]: (row["size"], row["mtime_ns"]) if row["settled"] else None
                for row in self._db.execute("SELECT file, size, mtime_ns, settled FROM runs")
            }
            present = list_files(self.directory)
            scan, drop = plan(known, present)
            for name in scan:
                self._store(present[name], scan_file(self.directory / name))
            self._db.executemany("DELETE FROM runs WHERE file = ?", [(n,) for n in drop])
            self._db.commit()
            self._refreshed = time.monotonic()
            return len(scan)

    def refresh_if_older(self, seconds: float, now: float | None = None) -> None:
        """:meth:`refresh` unless the last one is less than ``seconds`` old."""
        now = time.monotonic() if now is None else now
        if now - self._refreshed >= seconds:
            self.refresh()

    def _store(self, stat: FileStat, entry: dict[str, Any]) -> None:
        senders = entry["senders"]
        values = (
            stat.name,
            run_id_of(stat.name),
            stat.size,
            stat.mtime_ns,
            entry["start"],
            entry["end"],
            entry["condition"],
            json.dumps(senders),
            sum(senders.values()),
            int(entry["growing"]),
            entry["config_digest"],
            entry["sha256"],
            entry["tags_text"],
            entry["error"],
            time.time(),
            int(entry.get("settled", True)),
        )
        self._db.execute(
            f"INSERT OR REPLACE INTO runs ({_COLUMNS}, scanned, settled) "
            f"VALUES ({', '.join('?' * 16)})",
            values,
        )

    # --- queries ----------------------------------------------------------------------------
    def runs(self, limit: int | None = 50, where: Mapping[str, Any] | None = None) -> list[dict]:
        """Rows (newest file first) matching ``where`` (keys: :data:`WHERE_KEYS`).

        Raises UsageError for an unknown key or a value of the wrong form
        (:mod:`constellation.service.catalog_search`).
        """
        search = parse_search(where or {})
        sql = (
            f"SELECT {_COLUMNS}, comments.text AS comment FROM runs "
            "LEFT JOIN comments USING (run_id)"
        )
        if search.clauses:
            sql += " WHERE " + " AND ".join(search.clauses)
        sql += " ORDER BY mtime_ns DESC, file"
        with self._lock:
            rows = (_row(row) for row in self._db.execute(sql, search.params))
            # stop at the limit: rows past it are never decoded
            kept = filter(search.keeps, rows)
            return list(kept if limit is None else itertools.islice(kept, int(limit)))

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The row of ``run_id``, None if unknown."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, comments.text AS comment FROM runs "
                "LEFT JOIN comments USING (run_id) WHERE run_id = ? ORDER BY file LIMIT 1",
                (run_id,),
            ).fetchone()
        return None if row is None else _row(row)

    def set_comment(self, run_id: str, text: str) -> None:
        """Set (or with an empty text remove) the operator comment of ``run_id``."""
        with self._lock:
            if text:
                self._db.execute(
                    "INSERT OR REPLACE INTO comments (run_id, text) VALUES (?, ?)", (run_id, text)
                )
            else:
                self._db.execute("DELETE FROM comments WHERE run_id = ?", (run_id,))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunCatalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row(row: sqlite3.Row) -> dict[str, Any]:
    result = dict(row)
    result["senders"] = json.loads(result["senders"] or "{}")
    result["growing"] = bool(result["growing"])
    result.pop("tags_text", None)
    return result
