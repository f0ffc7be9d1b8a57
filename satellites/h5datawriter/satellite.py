"""Ready-made satellite ``H5DataWriter``: persists every run to one HDF5 file.

The file layout (normal and SWMR modes) lives in :mod:`satellites.h5datawriter.runfile`; this
module is the receiver satellite around it: parameters, file life cycle per run, periodic
flushing, disk-space monitoring, commands and metrics. Every piece of file work (creating,
writing, flushing, closing, disk-space checks) runs in one dedicated thread
(:class:`~satellites.h5datawriter.disk_thread.DiskThread`): the receive thread only hands
batches over, and the event loop that serves heartbeats and commands never waits for the disk.
Any write error moves the satellite to ERROR with a status naming the file and the cause; the
file is closed with everything written before the error intact.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from constellation.cli import run_satellite
from constellation.core.commands import CommandResult
from constellation.core.config import Configuration
from constellation.errors import ConfigError
from constellation.parameters import Param, read_parameters
from constellation.protocol.cdtp2 import DataRecord
from constellation.protocol.cdtp2_uniform import UniformBatch
from constellation.receiver import ReceiverSatellite
from constellation.satellite import CustomCommand
from satellites.h5datawriter.compression import single_blosc_thread
from satellites.h5datawriter.disk_thread import DiskThread, Periodic
from satellites.h5datawriter.runfile import RunFile

__all__ = ["H5DataWriter", "main"]

_COMPRESSIONS = ("none", "gzip", "lz4", "zstd", "blosc2-lz4", "blosc2-zstd", "blosc-lz4")
#: Default ``flush_interval`` (s): SWMR readers see records about this late; normal mode files
#: are flushed less often (a flush rewrites HDF5 metadata and costs write speed).
FLUSH_INTERVAL_SWMR = 1.0
FLUSH_INTERVAL_NORMAL = 10.0
#: Seconds between two checks of the free disk space.
DISK_CHECK_INTERVAL = 10.0
#: Data bytes the receive thread may queue ahead of the disk thread. Normal mode writes about
#: ten times fewer records per second, so a smaller queue holds as much time (and keeps the
#: backlog that ``stop`` must write short).
QUEUE_BYTES_SWMR = 16 * 1024 * 1024
QUEUE_BYTES_NORMAL = 2 * 1024 * 1024
#: Memory a decoded record takes beyond its frame bytes (record tuple, tag map, block list and
#: objects), counted against the queue bound so that small records do not pile up.
_RECORD_OVERHEAD = 256
#: How long closing the file may take when the satellite shuts down.
_SHUTDOWN_CLOSE_S = 60.0


class H5DataWriter(ReceiverSatellite):
    """Writes the data of every transmitter of a run into ``data_<run_id>.h5``.

    Parameters: ``output_directory`` (required; created if missing), ``allow_concurrent_reading``
    (SWMR mode, default false; needs ``_data.receive_from``), ``flush_interval`` (seconds between
    flushes, 0 disables them; default 1.0 in SWMR mode, so a concurrent reader sees records about
    1 s after they arrive, and 10.0 in normal mode), ``file_conflict`` (``error`` or ``rename``),
    ``compression`` (block data filter, default ``none``) and ``free_space_warning`` (MiB; a
    warning is logged below it, default 1024).
    """

    custom_commands = (
        CustomCommand(
            "get_concurrent_reading_status",
            "Whether the current file can be read while it is written (SWMR), and the file.",
        ),
        CustomCommand("get_current_filename", "Path of the file being written (or the last)."),
    )

    parameters = (
        Param("output_directory", Path, doc="directory of the run files; created if missing"),
        Param(
            "allow_concurrent_reading",
            bool,
            False,
            "SWMR mode: the file can be read while it is written (needs _data.receive_from)",
        ),
        Param(
            "flush_interval",
            float,
            None,
            "seconds between flushes, 0 = never; default 1.0 in SWMR mode (readers see records "
            "about that late), 10.0 in normal mode",
            unit="s",
            min=0.0,
        ),
        Param(
            "file_conflict",
            str,
            "error",
            "what to do when data_<run_id>.h5 exists: fail, or add a _<n> suffix",
            choices=("error", "rename"),
        ),
        Param("compression", str, "none", "filter of the data datasets", choices=_COMPRESSIONS),
        Param(
            "free_space_warning",
            float,
            1024.0,
            "free space below which a warning is logged",
            unit="MiB",
            min=0.0,
        ),
    )

    #: Live readers get each message after it is stored, with its index in the file.
    live_deferred = True
    output_directory = Path(".")
    flush_interval = FLUSH_INTERVAL_NORMAL
    swmr = False
    file_conflict = "error"
    compression: str | None = None
    free_space_warning_mib = 1024.0

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        # Owned by the disk thread: _file, _failed. Plain values read by other threads:
        # _last_path, _swmr_active, _free_mib.
        self._file: RunFile | None = None
        self._failed = False
        self._last_path: Path | None = None
        self._swmr_active = False
        self._free_mib: float | None = None
        self._low_space_warned = False
        self._flush_task: Periodic | None = None
        self._disk = DiskThread(f"{self.canonical_name}-disk", self._on_disk_error)
        self._disk.every(DISK_CHECK_INTERVAL, self._check_free_space)
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
            lambda: self._free_mib,
            10.0,
        )

    # --- configuration (worker thread) ----------------------------------------------------------
    def do_initializing(self, config: Configuration) -> str:
        values = read_parameters(self.parameters, config)
        self.output_directory = values["output_directory"]
        self.swmr = values["allow_concurrent_reading"]
        default_interval = FLUSH_INTERVAL_SWMR if self.swmr else FLUSH_INTERVAL_NORMAL
        interval = values["flush_interval"]
        self.flush_interval = default_interval if interval is None else interval
        self.file_conflict = values["file_conflict"]
        compression = values["compression"]
        self.compression = None if compression == "none" else compression
        self.free_space_warning_mib = values["free_space_warning"]
        if self.swmr and not self.framework.data.receive_from:
            raise ConfigError(
                "allow_concurrent_reading",
                "concurrent reading (SWMR) needs the list of transmitters in _data.receive_from",
            )
        self._disk.call(self._prepare_directory)
        mode = "SWMR" if self.swmr else "normal"
        return f"Writing to {self.output_directory} ({mode} mode)"

    def _prepare_directory(self) -> None:
        try:
            self.output_directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "output_directory", f"cannot create {self.output_directory}: {exc.strerror or exc}"
            ) from exc
        try:  # checked now, not when the first run's file cannot be created
            with tempfile.TemporaryFile(dir=self.output_directory):
                pass
        except OSError as exc:
            raise ConfigError(
                "output_directory",
                f"cannot write into {self.output_directory}: {exc.strerror or exc}",
            ) from exc
        self._check_free_space()

    # --- run: the worker and receive threads hand everything to the disk thread --------------
    def do_starting(self, run_id: str) -> str:
        self._disk.max_bytes = QUEUE_BYTES_SWMR if self.swmr else QUEUE_BYTES_NORMAL
        path: Path = self._disk.call(partial(self._open_file, run_id))
        self.metrics.publish_now("OUTPUT_FILE", str(path))
        self.log.info("writing run %s to %s", run_id, path)
        return f"Run {run_id}: writing {path.name}"

    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        self._disk.submit(partial(self._guarded, self._bor, sender, user_tags, config))

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        nbytes = self.last_message_bytes + _RECORD_OVERHEAD * len(records)
        self._disk.submit_batch(self._write_guarded, sender, records, nbytes)

    def receive_uniform_batch(self, sender: str, batch: UniformBatch) -> None:
        self._disk.submit_batch(
            self._write_uniform_guarded, sender, (batch,), self.last_message_bytes
        )

    def receive_eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        self._disk.submit(partial(self._guarded, self._eor, sender, user_tags, meta))

    def do_stopping(self) -> str:
        records, path = self._disk.call(self._close_file)
        return f"Run {self.run_id}: {records} records written to {path.name if path else '-'}"

    def do_failure(self) -> None:
        # Any thread, the event loop included: queue the closing, never wait for it.
        try:
            self._disk.submit(self._close_after_failure)
        except RuntimeError:  # disk thread stopped: the satellite is closing
            pass

    def on_close(self) -> None:
        try:
            self._disk.call(self._close_file, timeout=_SHUTDOWN_CLOSE_S)
        except Exception as exc:
            self.log.error("closing the output file at shutdown failed: %s", exc)
        self._disk.stop(_SHUTDOWN_CLOSE_S)

    # --- disk thread ------------------------------------------------------------------------------
    def _open_file(self, run_id: str) -> Path:
        self._close_file()  # left open by a failed run
        self._failed = False
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
        if self.flush_interval > 0:
            self._flush_task = self._disk.every(self.flush_interval, self._periodic_flush)
        return self._file.path

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """Run a file action; the first error of a run moves the satellite to ERROR."""
        if self._failed:
            return  # the run already failed: nothing more goes into the file
        try:
            action(*args)
        except Exception as exc:
            self._failed = True
            self.fail(f"{type(exc).__name__}: {exc}", exc)

    def _bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        file = self._require_file()
        file.begin_sender(sender, user_tags, config)
        self._swmr_active = file.swmr_active
        self.live.stored(sender, "BOR")  # live: publish once stored

    def _write_guarded(self, sender: str, records: Sequence[DataRecord]) -> None:
        self._guarded(self._write, sender, records)

    def _write(self, sender: str, records: Sequence[DataRecord]) -> None:
        self._require_file().write_records(sender, records)
        self.live.stored(sender, "DATA", len(records))  # live: publish once stored

    def _write_uniform_guarded(self, sender: str, batches: Sequence[UniformBatch]) -> None:
        self._guarded(self._write_uniform, sender, batches)

    def _write_uniform(self, sender: str, batches: Sequence[UniformBatch]) -> None:
        self._require_file().write_uniform(sender, batches)
        self.live.stored(sender, "DATA", sum(batch.count for batch in batches))

    def _eor(self, sender: str, user_tags: dict[str, Any], meta: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.end_sender(sender, user_tags, meta)
            self.live.stored(sender, "EOR")  # live: publish once stored

    def _close_file(self) -> tuple[int, Path | None]:
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        file, self._file = self._file, None
        self._swmr_active = False
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

    def _close_after_failure(self) -> None:
        self._failed = True  # batches still queued are dropped
        try:
            self._close_file()
        except Exception as exc:
            self.log.error("closing the output file after the failure failed: %s", exc)

    def _require_file(self) -> RunFile:
        if self._file is None:
            raise RuntimeError("no output file is open")
        return self._file

    def _periodic_flush(self) -> None:
        if self._file is None or self._failed:
            return
        try:
            self._file.flush()
        except Exception as exc:
            self._failed = True
            self.fail(f"{type(exc).__name__} while flushing: {exc}", exc)

    def _on_disk_error(self, exc: BaseException) -> None:
        self.log.error("unexpected error in the disk thread: %s", exc, exc_info=exc)

    def _check_free_space(self) -> None:
        try:
            free = shutil.disk_usage(self.output_directory).free / 2**20
        except OSError:
            self._free_mib = None
            return
        if free < self.free_space_warning_mib:
            if not self._low_space_warned:
                self.log.warning("only %.0f MiB free in %s", free, self.output_directory)
                self._low_space_warned = True
        else:
            self._low_space_warned = False
        self._free_mib = round(free, 1)

    # --- commands and metrics (event loop: plain values only, no file access) ------------------
    def get_concurrent_reading_status(self) -> CommandResult:
        active = self._swmr_active
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


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``SatelliteH5DataWriter``: the writer's process tuning, then the launcher."""
    single_blosc_thread()
    return run_satellite(H5DataWriter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
