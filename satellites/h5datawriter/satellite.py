"""Ready-made satellite ``H5DataWriter``: persists every run to one HDF5 file.

The file layout (normal and SWMR modes) lives in :mod:`satellites.h5datawriter.runfile`; this
module is the receiver satellite around it: parameters, file life cycle per run, periodic
flushing, disk-space monitoring, commands and metrics. Any write error moves the satellite to
ERROR with a status naming the file and the cause; the file is closed with everything written
before the error intact.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from constellation.cli import run_satellite
from constellation.core.commands import CommandResult
from constellation.core.config import Configuration
from constellation.errors import ConfigError
from constellation.net.loop import TimerHandle
from constellation.protocol.cdtp2 import DataRecord
from constellation.receiver import ReceiverSatellite
from constellation.satellite import CustomCommand
from satellites.h5datawriter.runfile import RunFile

__all__ = ["H5DataWriter", "main"]

_COMPRESSIONS = ("none", "gzip", "lz4", "zstd", "blosc2-lz4", "blosc2-zstd", "blosc-lz4")


class H5DataWriter(ReceiverSatellite):
    """Writes the data of every transmitter of a run into ``data_<run_id>.h5``."""

    custom_commands = (
        CustomCommand(
            "get_concurrent_reading_status",
            "Whether the current file can be read while it is written (SWMR), and the file.",
        ),
        CustomCommand("get_current_filename", "Path of the file being written (or the last)."),
    )

    output_directory = Path(".")
    flush_interval = 10.0
    swmr = False
    file_conflict = "error"
    compression: str | None = None
    free_space_warning_mib = 1024.0

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self._file: RunFile | None = None
        self._last_path: Path | None = None
        self._file_lock = threading.RLock()
        self._flush_timer: TimerHandle | None = None
        self._low_space_warned = False
        self._disk_timer: TimerHandle | None = None
        self.metrics.register(
            "RECORDS_WRITTEN", "", "Records written in this run", self._records_written, 5.0
        )
        self.metrics.register(
            "BYTES_WRITTEN", "B", "Block bytes written in this run", self._bytes_written, 5.0
        )
        self.metrics.register(
            "OUTPUT_FILE", "", "File being written", lambda: str(self._last_path or ""), 10.0
        )
        self.metrics.register(
            "DISKSPACE_FREE",
            "MiB",
            "Free space in the output directory",
            self._check_free_space,
            10.0,
        )

    # --- configuration --------------------------------------------------------------------------
    def do_initializing(self, config: Configuration) -> str:
        self.output_directory = config.get_path("output_directory")
        self.flush_interval = config.get_float("flush_interval", 10.0, min=0.0)
        self.swmr = config.get_bool("allow_concurrent_reading", False)
        self.file_conflict = config.get_str("file_conflict", "error", choices=["error", "rename"])
        compression = config.get_str("compression", "none", choices=list(_COMPRESSIONS))
        self.compression = None if compression == "none" else compression
        self.free_space_warning_mib = config.get_float("free_space_warning", 1024.0, min=0.0)
        if self.swmr and not self.framework.data.receive_from:
            raise ConfigError(
                "allow_concurrent_reading",
                "concurrent reading (SWMR) needs the list of transmitters in _data.receive_from",
            )
        try:
            self.output_directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "output_directory", f"cannot create {self.output_directory}: {exc}"
            ) from exc
        if self._disk_timer is None:
            self._disk_timer = self.every(10.0, self._check_free_space)
        self._check_free_space()
        mode = "SWMR" if self.swmr else "normal"
        return f"Writing to {self.output_directory} ({mode} mode)"

    # --- run ------------------------------------------------------------------------------------
    def do_starting(self, run_id: str) -> str:
        with self._file_lock:
            self._file = RunFile.create(
                self.output_directory,
                run_id,
                self.canonical_name,
                swmr=self.swmr,
                expected_senders=list(self.framework.data.receive_from or []) or None,
                compression=self.compression,
                file_conflict=self.file_conflict,
                version=self.version,
            )
            self._last_path = self._file.path
        self.metrics.publish_now("OUTPUT_FILE", str(self._file.path))
        if self.flush_interval > 0 and self.loop is not None:
            self._flush_timer = self.loop.call_every(
                self.flush_interval, self._periodic_flush, first=self.flush_interval
            )
        self.log.info("writing run %s to %s", run_id, self._file.path)
        return f"Run {run_id}: writing {self._file.path.name}"

    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        with self._file_lock:
            self._require_file().begin_sender(sender, user_tags, config)

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        with self._file_lock:
            self._require_file().write_records(sender, records)

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        with self._file_lock:
            if self._file is not None:
                self._file.end_sender(sender, user_tags, meta)

    def do_stopping(self) -> str:
        records, path = self._close_file()
        return f"Run {self.run_id}: {records} records written to {path.name if path else '-'}"

    def do_failure(self) -> None:
        self._close_file()

    def _close_file(self) -> tuple[int, Path | None]:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        with self._file_lock:
            file, self._file = self._file, None
            if file is None:
                return 0, self._last_path
            try:
                file.close()
            finally:
                self.log.info(
                    "closed %s: %d records, %d bytes",
                    file.path,
                    file.records_written,
                    file.bytes_written,
                )
            return file.records_written, file.path

    def _require_file(self) -> RunFile:
        if self._file is None:
            raise RuntimeError("no output file is open")
        return self._file

    def _periodic_flush(self) -> None:
        with self._file_lock:
            if self._file is None:
                return
            try:
                self._file.flush()
            except Exception as exc:
                self.fail(f"{type(exc).__name__} while flushing: {exc}", exc)

    # --- commands and metrics -------------------------------------------------------------------
    def get_concurrent_reading_status(self) -> CommandResult:
        with self._file_lock:
            active = bool(self._file is not None and self._file.swmr_active)
        path = str(self._last_path or "")
        text = "Concurrent reading possible" if active else "Concurrent reading not active"
        return CommandResult(text, {"swmr_active": active, "swmr_mode": self.swmr, "file": path})

    def get_current_filename(self) -> CommandResult:
        return CommandResult(str(self._last_path or ""), str(self._last_path or ""))

    def _records_written(self) -> int:
        file = self._file
        return file.records_written if file is not None else 0

    def _bytes_written(self) -> int:
        file = self._file
        return file.bytes_written if file is not None else 0

    def _check_free_space(self) -> float | None:
        try:
            free = shutil.disk_usage(self.output_directory).free / 2**20
        except OSError:
            return None
        if free < self.free_space_warning_mib:
            if not self._low_space_warned:
                self.log.warning("only %.0f MiB free in %s", free, self.output_directory)
                self._low_space_warned = True
        else:
            self._low_space_warned = False
        return round(free, 1)


def main(argv: Sequence[str] | None = None) -> int:
    return run_satellite(H5DataWriter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
