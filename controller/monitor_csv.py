"""Controller layer: the CSV files of the ``Monitor`` (``-o DIR``), rotated by size.

``log.csv`` holds every log message, ``metric_<NAME>.csv`` every value of one metric; each row
carries the run identifier its sender last announced (its ``RUN_ID`` metric), so rows can be
grouped by run afterwards.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from constellation.net.listener import MetricSample
from constellation.protocol.cmdp1 import CMDP1Log
from constellation.protocol.common import to_datetime

__all__ = ["LOG_HEADER", "METRIC_HEADER", "CsvRecorder", "RotatingCsv"]

#: Columns of ``log.csv`` and of every ``metric_<NAME>.csv``.
LOG_HEADER = ("time", "sender", "run_id", "level", "topic", "message")
METRIC_HEADER = ("time", "sender", "run_id", "value", "unit")


class RotatingCsv:
    """An append-only CSV file with a header row, rotated when it grows past ``max_bytes``.

    ``name.csv`` becomes ``name.csv.1`` (older ones shift to ``.2`` ... ``.<backups>``, the oldest
    is deleted) and a fresh ``name.csv`` with the header row is started. An existing file is
    continued, so stopping and restarting the Monitor never loses earlier rows.
    """

    def __init__(
        self, path: Path, header: Sequence[str], max_bytes: int = 10 * 2**20, backups: int = 3
    ) -> None:
        self.path = path
        self.header = tuple(header)
        self.max_bytes = max_bytes
        self.backups = backups
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self._file: TextIO | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._file = self.path.open("a", encoding="utf-8", newline="")
        self._size = self.path.stat().st_size
        if self._size == 0:
            self._write_line(self.header)

    def _write_line(self, row: Sequence[Any]) -> None:
        assert self._file is not None
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(row)
        line = self._buffer.getvalue()
        self._file.write(line)
        self._file.flush()
        self._size += len(line.encode("utf-8"))

    def write(self, row: Sequence[Any]) -> None:
        """Append one row (flushed at once), rotating first if the file is full."""
        if self._file is None:
            return
        if self._size >= self.max_bytes:
            self._rotate()
        self._write_line(row)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
        else:
            self.path.with_name(f"{self.path.name}.{self.backups}").unlink(missing_ok=True)
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvRecorder:
    """``log.csv`` plus one ``metric_<NAME>.csv`` per metric in ``directory``."""

    def __init__(self, directory: Path, max_bytes: int = 10 * 2**20, backups: int = 3) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        directory.mkdir(parents=True, exist_ok=True)
        self._logs: RotatingCsv | None = None
        self._metrics: dict[str, RotatingCsv] = {}
        self._lock = threading.Lock()

    def log(self, message: CMDP1Log, run_id: str = "") -> None:
        when = to_datetime(message.time).isoformat()
        row = (when, message.sender, run_id, message.level, message.log_topic, message.message)
        with self._lock:
            if self._logs is None:
                self._logs = self._file("log.csv", LOG_HEADER)
            self._logs.write(row)

    def metric(self, sample: MetricSample, run_id: str = "") -> None:
        row = (
            sample.time.isoformat(),
            sample.sender,
            run_id,
            _csv_value(sample.value),
            sample.unit,
        )
        with self._lock:
            writer = self._metrics.get(sample.name)
            if writer is None:
                writer = self._metrics[sample.name] = self._file(
                    f"metric_{sample.name}.csv", METRIC_HEADER
                )
            writer.write(row)

    def _file(self, name: str, header: Sequence[str]) -> RotatingCsv:
        return RotatingCsv(self.directory / name, header, self.max_bytes, self.backups)

    def close(self) -> None:
        with self._lock:
            for writer in [self._logs, *self._metrics.values()]:
                if writer is not None:
                    writer.close()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
