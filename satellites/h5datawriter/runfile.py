"""H5DataWriter file-format layer: one HDF5 file for one run, in the normal or the SWMR layout.

:class:`RunFile` owns the file ``<directory>/data_<run_id>.h5`` (docs/file-format.md) and knows
nothing about networking: the satellite feeds it BORs, batches of records and EORs. Every group
sits at the file root, side by side, as Constellation's own H5DataWriter lays it out::

    /<writer canonical name>            attrs constellation_version, date_utc, swmr_mode
    /<Type.Name>                        one group per sender
        BOR/user_tags, BOR/configuration          groups holding attributes
        EOR/user_tags, EOR/run_metadata           attributes (normal) | uint8 JSON (SWMR)
        data_<seq 9 digits>/block_<2 digits>      normal layout (see normal_layout)
        data, data_idx, meta, meta_idx            SWMR layout (see swmr_layout)

In SWMR mode the file switches to single-writer/multiple-reader once every expected sender sent
its BOR; from then on no object can be created. Every HDF5 or OS failure surfaces as
:class:`~constellation.errors.OutputFileError` naming the file and the cause; afterwards the
file accepts no more records, but :meth:`RunFile.close` still closes it with everything written
(and, in SWMR mode, flushed) before the error intact. Not thread-safe: use it from one thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

from constellation import __version__
from constellation.errors import ConfigError, OutputFileError
from constellation.protocol.cdtp2_uniform import UniformBatch
from satellites.h5datawriter.compression import compression_kwargs
from satellites.h5datawriter.file_setup import (
    FILE_CONFLICTS,
    H5_ERRORS,
    attempt,
    check_name,
    describe,
    end_of_allocation,
    make_dir,
    open_new,
    output_path,
    write_attr_group,
    write_header,
)
from satellites.h5datawriter.normal_layout import NormalLayout, RecordLike
from satellites.h5datawriter.space import DiskReserve
from satellites.h5datawriter.swmr_layout import SwmrSender, batch_nbytes
from satellites.h5datawriter.symbol_table import create_symbol_table_group

__all__ = ["FILE_CONFLICTS", "LIBVER_NORMAL", "LIBVER_SWMR", "RunFile", "output_path"]

#: Object format bounds. SWMR needs the HDF5 1.10 format, whose superblock marks a file "open for
#: writing" until it is closed; normal mode keeps the 1.8 format (same speed), so a file whose
#: writer died (or could not close on a full disk) still opens, with everything flushed before.
LIBVER_NORMAL = ("v108", "latest")
LIBVER_SWMR = ("v110", "latest")
_META_PER_RECORD = 4096  # generous upper bound of HDF5 metadata bytes per record


class RunFile:
    """One run's HDF5 file. Create with :meth:`RunFile.create`; always :meth:`close` it."""

    def __init__(
        self,
        h5file: h5py.File,
        path: Path,
        writer_name: str,
        swmr: bool,
        expected_senders: Sequence[str] | None,
        compression: Mapping[str, Any],
        reserve: DiskReserve,
    ) -> None:
        self._file: h5py.File | None = h5file
        self._reserve = reserve
        self._path = path
        self._senders_parent: h5py.Group = h5file  # sender groups sit at the file root
        self._writer_name = writer_name
        self._swmr = swmr
        self._expected = {name.casefold(): name for name in expected_senders or ()}
        self._compression = dict(compression)
        self._normal = NormalLayout(self._compression, h5file.libver)
        self._groups: dict[str, h5py.Group] = {}
        self._swmr_senders: dict[str, SwmrSender] = {}
        self._ended: set[str] = set()
        self._failure: OutputFileError | None = None
        self._records = 0
        self._bytes = 0

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        run_id: str,
        writer_name: str,
        *,
        swmr: bool = False,
        expected_senders: Sequence[str] | None = None,
        compression: str | None = None,
        file_conflict: str = "error",
        version: str = __version__,
    ) -> RunFile:
        """Create the run's file (and ``directory`` if missing); never overwrites a file.

        Raises :class:`~constellation.errors.OutputFileExistsError` when the file exists in
        ``"error"`` mode, :class:`~constellation.errors.ConfigError` for SWMR mode without
        expected senders or an unknown compression, and
        :class:`~constellation.errors.OutputFileError` when the file cannot be created.
        """
        check_name(writer_name, "writer")
        if swmr and not expected_senders:
            raise ConfigError(
                "_data.receive_from",
                "allow_concurrent_reading = true needs the list of transmitters to wait for",
            )
        filters = compression_kwargs(compression)
        output_path(directory, run_id, file_conflict)  # validate before creating anything
        path = output_path(make_dir(directory), run_id, file_conflict)
        h5file = open_new(path, LIBVER_SWMR if swmr else LIBVER_NORMAL)
        reserve: DiskReserve | None = None
        try:
            reserve = DiskReserve(path)
            reserve.ensure(end_of_allocation(h5file), 0)
            write_header(h5file.require_group(writer_name), version, swmr)
            return cls(h5file, path, writer_name, swmr, expected_senders, filters, reserve)
        except H5_ERRORS as exc:
            if reserve is not None:
                reserve.abandon()
            attempt(h5file.close)
            attempt(lambda: path.unlink(missing_ok=True))  # our own empty file: do not block
            raise OutputFileError(path, f"cannot set up the file: {describe(exc)}") from exc

    # --- properties -------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Path of the file."""
        return self._path

    @property
    def records_written(self) -> int:
        """Records written so far (all senders)."""
        return self._records

    @property
    def bytes_written(self) -> int:
        """Block bytes written so far (all senders)."""
        return self._bytes

    @property
    def swmr_active(self) -> bool:
        """True once the file is in SWMR mode (readers may open it while it is written)."""
        return self._file is not None and self._swmr and bool(self._file.swmr_mode)

    @property
    def senders(self) -> tuple[str, ...]:
        """Senders that have a group in the file, in BOR order."""
        return tuple(self._groups)

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """Expected senders whose BOR has not arrived yet (SWMR mode)."""
        seen = {name.casefold() for name in self._groups}
        return tuple(name for key, name in self._expected.items() if key not in seen)

    @property
    def closed(self) -> bool:
        return self._file is None

    # --- run events -------------------------------------------------------------------------
    def begin_sender(
        self, sender: str, user_tags: Mapping[str, Any], config: Mapping[str, Any]
    ) -> None:
        """Create the sender's group with its BOR (and, in SWMR mode, its datasets)."""
        check_name(sender, "sender")
        with self._guard(f"writing the BOR of {sender}"):
            if sender in self._groups:
                raise OutputFileError(self._path, f"second BOR from sender '{sender}'")
            if self.swmr_active:
                raise OutputFileError(
                    self._path,
                    f"BOR from unexpected sender '{sender}' after SWMR mode started "
                    f"(expected: {', '.join(self._expected.values())})",
                )
            group = self._create_group(sender)
            bor = group.create_group("BOR")
            write_attr_group(bor, "user_tags", user_tags)
            write_attr_group(bor, "configuration", config)
            if self._swmr:
                self._swmr_senders[sender] = SwmrSender(group, self._compression)
            self._groups[sender] = group
            self._maybe_start_swmr()

    def write_records(self, sender: str, records: Sequence[RecordLike]) -> None:
        """Write a batch of records of ``sender`` (objects with sequence, tags and blocks)."""
        if not records:
            return
        with self._guard(f"writing {len(records)} records of {sender}", fatal=True):
            group = self._sender_group(sender)
            if self._swmr:
                swmr_sender = self._swmr_senders[sender]
                count, nbytes = swmr_sender.queue(records)
                if swmr_sender.full:
                    self._write_pending(swmr_sender)
            else:
                self._reserve_space(records)
                count, nbytes = self._normal.write(group, records)
            self._records += count
            self._bytes += nbytes

    def write_uniform(self, sender: str, batches: Sequence[UniformBatch]) -> None:
        """Write uniform batches of ``sender``: the same file contents as :meth:`write_records`
        with their records, building at most two record objects per batch."""
        if not batches:
            return
        records = sum(batch.count for batch in batches)
        with self._guard(f"writing {records} records of {sender}", fatal=True):
            group = self._sender_group(sender)
            if not self._swmr:
                nbytes = sum(batch.nbytes for batch in batches)
                self._reserve_bytes(2 * nbytes + _META_PER_RECORD * records, records)
                for batch in batches:
                    count, nbytes = self._normal.write_uniform(group, batch)
                    self._records += count
                    self._bytes += nbytes
                return
            swmr_sender = self._swmr_senders[sender]
            for batch in batches:
                count, nbytes = swmr_sender.queue_uniform(batch)
                self._records += count
                self._bytes += nbytes
            if swmr_sender.full:
                self._write_pending(swmr_sender)

    def end_sender(
        self, sender: str, user_tags: Mapping[str, Any], run_metadata: Mapping[str, Any]
    ) -> None:
        """Write the sender's EOR (attributes in normal mode, JSON datasets in SWMR mode)."""
        check_name(sender, "sender")
        with self._guard(f"writing the EOR of {sender}"):
            if sender in self._ended:
                raise OutputFileError(self._path, f"second EOR from sender '{sender}'")
            if self._swmr:
                self._swmr_sender_for_eor(sender).write_eor(user_tags, run_metadata)
            else:
                group = self._groups.get(sender) or self._new_group(sender)
                eor = group.create_group("EOR")
                write_attr_group(eor, "user_tags", user_tags)
                write_attr_group(eor, "run_metadata", run_metadata)
            self._ended.add(sender)

    def flush(self) -> None:
        """Flush everything to disk; in SWMR mode data first, then the indices."""
        if self._file is None:
            return
        with self._guard("flushing", fatal=True):
            self._flush_datasets()
            self._file.flush()
            self._reserve_space(())  # a flush may have cut the reservation off

    def close(self) -> None:
        """Flush and close the file. Idempotent; the file stays valid even after an error."""
        h5file, self._file = self._file, None
        if h5file is None:
            return
        error = attempt(self._flush_datasets) or attempt(h5file.flush)
        end = 0 if error else end_of_allocation(h5file)
        self._normal.close()
        self._swmr_senders.clear()
        self._groups.clear()
        error = attempt(h5file.close) or error
        if error is None:
            error = attempt(lambda: self._reserve.release(end))  # cut the unused reservation
        self._reserve.abandon()
        if error is not None:
            raise OutputFileError(self._path, f"closing failed: {describe(error)}") from error

    def _flush_datasets(self) -> None:
        """Write what SWMR senders hold back and flush their datasets.

        Space for the held-back batches (at most about one PENDING_BYTES each) is reserved
        here when the file is open; while closing, the HEADROOM kept by every earlier
        reservation covers them.
        """
        for swmr_sender in self._swmr_senders.values():
            if self._file is not None:
                self._write_pending(swmr_sender)
            swmr_sender.flush()

    def _write_pending(self, swmr_sender: SwmrSender) -> None:
        """Reserve space for what ``swmr_sender`` holds back, then write it."""
        if swmr_sender.pending_records:
            upcoming = 2 * swmr_sender.pending_bytes
            records = swmr_sender.pending_records
            self._reserve_bytes(upcoming + _META_PER_RECORD * records, records)
            swmr_sender.write_pending()

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- helpers ----------------------------------------------------------------------------
    @contextmanager
    def _guard(self, action: str, fatal: bool = False) -> Iterator[None]:
        """Turn h5py/OS errors into OutputFileError; after a fatal one refuse further writes."""
        if self._file is None:
            raise OutputFileError(self._path, f"{action}: the file is closed")
        if self._failure is not None:
            raise OutputFileError(
                self._path, f"{action}: refused after an earlier error ({self._failure.reason})"
            )
        try:
            yield
        except OutputFileError:
            raise
        except H5_ERRORS as exc:
            error = OutputFileError(self._path, f"{action} failed: {describe(exc)}")
            if fatal:
                self._failure = error
            raise error from exc

    def _reserve_space(self, records: Sequence[RecordLike]) -> None:
        """Make sure the batch (and closing afterwards) cannot hit a full disk inside HDF5."""
        upcoming = 2 * batch_nbytes(records) + _META_PER_RECORD * len(records)
        self._reserve_bytes(upcoming, len(records))

    def _reserve_bytes(self, upcoming: int, records: int = 0) -> None:
        """Keep ``upcoming`` bytes (plus HEADROOM) allocated past the end of allocation."""
        assert self._file is not None
        try:
            self._reserve.ensure(end_of_allocation(self._file), upcoming)
        except OSError as exc:
            what = f"the next {records} records" if records else "further writing"
            reason = f"no disk space for {what}: {describe(exc)}"
            raise OutputFileError(self._path, reason) from exc

    def _sender_group(self, sender: str) -> h5py.Group:
        group = self._groups.get(sender)
        if group is None:
            raise OutputFileError(self._path, f"records from sender '{sender}' before its BOR")
        return group

    def _create_group(self, sender: str) -> h5py.Group:
        """The sender's group at the file root, next to (never inside) the writer's group."""
        if sender.casefold() == self._writer_name.casefold():
            raise OutputFileError(self._path, f"sender '{sender}' is named like this writer")
        if self._swmr:
            return self._senders_parent.create_group(sender)
        return create_symbol_table_group(self._senders_parent, sender)  # flat cost per record

    def _new_group(self, sender: str) -> h5py.Group:
        group = self._create_group(sender)
        self._groups[sender] = group
        return group

    def _swmr_sender_for_eor(self, sender: str) -> SwmrSender:
        swmr_sender = self._swmr_senders.get(sender)
        if swmr_sender is None:
            raise OutputFileError(
                self._path, f"EOR from sender '{sender}' without BOR cannot be stored in SWMR mode"
            )
        return swmr_sender

    def _maybe_start_swmr(self) -> None:
        if self._swmr and self._file is not None and not self.waiting_for:
            self._file.flush()
            self._file.swmr_mode = True
            self._reserve_space(())  # starting SWMR truncates the file to its allocated end
