"""Offline decoding: read H5DataWriter files (docs/file-format.md) in both layouts, also live.

:func:`open_run` opens a file read-only (in SWMR-read mode when possible, so a file still being
written in SWMR mode can be read; :meth:`RunReader.refresh` then shows newer records) and
returns a :class:`RunReader`: writers, senders, BOR/EOR maps, record counts and records as
``(sequence, tags, blocks)`` with blocks typed by the ``dtype`` tag;
:meth:`RunReader.raw_records` gives them as stored (block bytes, SWMR tags as their JSON text)
for bulk readers such as the data service.

Where the groups are (also in files of earlier versions): :mod:`constellation.reader.tree`.
The SWMR end-of-data rule: :mod:`constellation.reader.swmr_index`. How attribute and JSON
values come back: :mod:`constellation.reader.values`.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
from h5py import h5f, h5g

from constellation.errors import InputFileError
from constellation.reader.superblock import read_superblock
from constellation.reader.swmr_index import INDEX_WINDOW, SWMR_DATASETS, read_window, swmr_count
from constellation.reader.swmr_meta import TagCache
from constellation.reader.tree import (
    RECORD,
    SenderGroup,
    discover,
    is_writer,
    link_names,
    normal_bytes,
    open_blocks,
    read_dataset,
)
from constellation.reader.values import (
    RawRecord,
    Record,
    attr_group,
    attrs_dict,
    json_map,
    read_attrs,
    unflatten,
)

try:  # registers the compression filters of H5DataWriter files (optional)
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - hdf5plugin is part of the hdf5 extra
    pass

__all__ = ["RawRecord", "Record", "RunReader", "SenderStats", "open_run", "unflatten"]


class SenderStats(NamedTuple):
    """Record count, first/last sequence numbers (None without records) and block bytes."""

    records: int
    first_sequence: int | None
    last_sequence: int | None
    data_bytes: int


def open_run(path: str | os.PathLike[str]) -> RunReader:
    """Open an H5DataWriter file for reading (use as a context manager, or call ``close``).

    Raises ``FileNotFoundError`` for a missing file and
    :class:`~constellation.errors.InputFileError` for a file that is no HDF5 file, holds no
    writer or sender groups, or is locked by a writer that has not enabled SWMR mode.
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(file_path))
    h5file, swmr = _open(file_path)
    reader = RunReader(h5file, file_path, swmr)
    if not reader.writers and not reader.senders:
        reader.close()
        raise InputFileError(file_path, "no H5DataWriter writer or sender groups in this file")
    return reader


def _open(path: Path) -> tuple[h5py.File, bool]:
    """Open in SWMR-read mode while a SWMR writer has the file open, else plainly.

    Whether a writer has it open comes from the superblock's flags on disk
    (:mod:`constellation.reader.superblock`), not from which open succeeds: HDF5 shares an
    open file between the handles of one process, so a plain open succeeds while another
    handle of this process reads the growing file in SWMR mode. A plain open comes first
    otherwise: SWMR-read mode retries failed metadata reads many times (it takes them for a
    writer's changes in flight), which would make a damaged file very slow to fail.
    """
    try:
        writing = read_superblock(path).swmr_writing
    except InputFileError:
        writing = False  # the plain open below names what is wrong
    if writing:
        try:
            return h5py.File(path, "r", swmr=True), True
        except OSError:
            pass
    try:
        return h5py.File(path, "r"), False
    except OSError as exc:
        first = exc
    try:
        return h5py.File(path, "r", swmr=True), True
    except OSError:
        pass
    text = str(first)
    if "lock" in text.lower() or "already open" in text.lower():
        reason = (
            "it is being written without concurrent reading (normal mode, or SWMR mode "
            f"before every sender sent its BOR), or its writer died: {text}"
        )
    else:
        reason = f"not a readable HDF5 file: {text}"
    raise InputFileError(path, reason) from first


class RunReader:
    """Read access to one H5DataWriter file; see the module docstring for the rules."""

    def __init__(self, h5file: h5py.File, path: Path, swmr: bool) -> None:
        self._file = h5file
        self._path = path
        self._swmr = swmr
        self._shared = h5f.get_obj_count(h5file.id, h5f.OBJ_FILE) > 1
        self._writers = [name for name, obj in h5file.items() if is_writer(obj)]
        self._senders = discover(h5file, self._writers)
        self._datasets: dict[str, dict[str, h5py.Dataset]] = {}
        self._counts: dict[str, int] = {}
        self._names: dict[str, list[tuple[int, str]]] = {}
        self._tags = TagCache()

    # --- file level ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def writers(self) -> list[str]:
        """Writer groups (canonical names of the writers) at the top of the file."""
        return list(self._writers)

    @property
    def senders(self) -> list[str]:
        """Sender names (``Type.Name``); ``writer/Type.Name`` where two writers share one."""
        return list(self._senders)

    @property
    def mode(self) -> str:
        """``"swmr"`` or ``"normal"``: from the writers' ``swmr_mode`` or the sender layouts."""
        for writer in self._writers:
            if bool(self._file[writer].attrs.get("swmr_mode", False)):
                return "swmr"
        layouts = {sender.layout for sender in self._senders.values()}
        return "swmr" if "swmr" in layouts else "normal"

    @property
    def swmr_read(self) -> bool:
        """True if the file was opened in SWMR-read mode (``refresh`` shows new data)."""
        return self._swmr

    @property
    def shared(self) -> bool:
        """True if another handle of this process had the file open when this one opened it.

        HDF5 then shares that handle's view: it may show the file as it was when that one
        opened it (fewer records, no EOR) until ``refresh``, and new groups not even then.
        """
        return self._shared

    @property
    def run_id(self) -> str:
        """The run identifier: from an EOR's ``run_metadata.run_id``, else the file name."""
        for sender in self._senders:
            eor = self.eor(sender)
            run_id = (eor or {}).get("run_metadata", {}).get("run_id")
            if run_id:
                return str(run_id)
        stem = self._path.stem
        return stem[5:] if stem.startswith("data_") else stem

    @property
    def runs(self) -> list[str]:
        """Run identifiers in this file (one per file for H5DataWriter)."""
        return [self.run_id]

    def writer_info(self, writer: str) -> dict[str, Any]:
        """Attributes of a writer group (constellation_version, date_utc, swmr_mode)."""
        if writer not in self._writers:
            raise KeyError(f"no writer {writer!r} in {self._path} (writers: {self._writers})")
        return attrs_dict(self._file[writer].attrs)

    def layout(self, sender: str) -> str:
        """``"normal"`` or ``"swmr"``: the layout of one sender's records."""
        return self._sender(sender).layout

    def refresh(self) -> None:
        """Make records written since opening (or the last refresh) visible (SWMR files)."""
        self._counts.clear()
        self._names.clear()
        if not self._swmr:
            return
        for name, sender in self._senders.items():
            if sender.layout == "swmr":
                for dset in self._swmr_datasets(name).values():
                    dset.refresh()

    def close(self) -> None:
        self._datasets.clear()
        self._file.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- per sender ---------------------------------------------------------------------------
    def bor(self, sender: str) -> dict[str, Any]:
        """``{"user_tags": {...}, "configuration": {...}}`` of the sender's BOR."""
        group = self._sender(sender).group
        return {key: attr_group(group, f"BOR/{key}") for key in ("user_tags", "configuration")}

    def eor(self, sender: str) -> dict[str, Any] | None:
        """``{"user_tags": {...}, "run_metadata": {...}}`` of the EOR, None if not written yet."""
        group = self._sender(sender).group
        if "EOR" not in group:
            return None
        parts = {key: self._eor_part(group["EOR"], key) for key in ("user_tags", "run_metadata")}
        if all(value is None for value in parts.values()):
            return None
        return {key: value or {} for key, value in parts.items()}

    def _eor_part(self, eor: h5py.Group, key: str) -> dict[str, Any] | None:
        obj = eor.get(key)
        if obj is None:
            return None
        if isinstance(obj, h5py.Group):
            return unflatten(attrs_dict(obj.attrs))
        if self._swmr:
            obj.refresh()
        try:  # Constellation pre-sizes these datasets: JSON, then NUL padding
            return json_map(obj[()].tobytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(self._path, f"{obj.name} is no JSON map: {exc}") from exc

    def record_count(self, sender: str) -> int:
        """Number of records of ``sender`` visible now (see the end-of-data rule)."""
        sender = self._key(sender)
        info = self._sender(sender)
        if info.layout == "normal":
            return len(self._record_names(sender))
        if sender not in self._counts:
            self._counts[sender] = swmr_count(self._swmr_datasets(sender))
        return self._counts[sender]

    def records(self, sender: str, start: int = 0) -> Iterator[Record]:
        """Iterate the records of ``sender`` from position ``start`` (0-based, not a sequence).

        The record count is taken when iteration starts; call :meth:`refresh` and iterate again
        from the count seen so far to follow a file that is still being written.
        """
        sender = self._key(sender)
        info = self._sender(sender)
        if info.layout == "normal":
            return self._normal_records(sender, start)
        return self._swmr_records(sender, start, self.record_count(sender))

    def raw_records(
        self, sender: str, start: int = 0, stop: int | None = None
    ) -> Iterator[RawRecord]:
        """Records ``[start, stop)`` as stored (:class:`RawRecord`), for bulk readers.

        Blocks are bytes, not typed arrays; SWMR tags stay JSON text where the writer's form
        allows. Cheaper than :meth:`records` where the bytes are passed on as they are.
        """
        sender = self._key(sender)
        count = self.record_count(sender)
        stop = count if stop is None else min(stop, count)
        if self._sender(sender).layout == "normal":
            return self._normal_raw(sender, start, stop)
        return self._swmr_raw(sender, start, stop)

    def stats(self, sender: str) -> SenderStats:
        """Count, sequence range and block bytes, without reading the block data."""
        sender = self._key(sender)
        info = self._sender(sender)
        count = self.record_count(sender)
        if count == 0:
            return SenderStats(0, None, None, 0)
        if info.layout == "normal":
            names = self._record_names(sender)
            gid = info.group.id
            nbytes = sum(normal_bytes(h5g.open(gid, name.encode())) for _, name in names)
            return SenderStats(count, names[0][0], names[-1][0], nbytes)
        first, last = (self._swmr_record(sender, position) for position in (0, count - 1))
        nbytes = int(self._swmr_datasets(sender)["data_idx"][count - 1])
        return SenderStats(count, first.sequence, last.sequence, nbytes)

    def _swmr_record(self, sender: str, position: int) -> Record:
        return next(self._swmr_records(sender, position, position + 1))

    # --- normal layout ------------------------------------------------------------------------
    def _record_names(self, sender: str) -> list[tuple[int, str]]:
        names = self._names.get(sender)
        if names is None:
            group = self._sender(sender).group
            matches = ((RECORD.match(name), name) for name in link_names(group.id))
            names = sorted((int(m.group(1)), name) for m, name in matches if m)
            self._names[sender] = names
        return names

    def _normal_records(self, sender: str, start: int) -> Iterator[Record]:
        gid = self._sender(sender).group.id
        for sequence, name in self._record_names(sender)[max(start, 0) :]:
            record = h5g.open(gid, name.encode())
            tags = unflatten(read_attrs(record))
            blocks = [read_dataset(dset) for dset in open_blocks(record)]
            yield Record(sequence, tags, blocks)

    def _normal_raw(self, sender: str, start: int, stop: int) -> Iterator[RawRecord]:
        records = itertools.islice(self._normal_records(sender, start), max(stop - start, 0))
        for sequence, tags, blocks in records:
            views = [block.view(np.uint8).data for block in blocks]
            yield RawRecord(sequence, tags, None, views, [block.dtype.str for block in blocks])

    # --- SWMR layout --------------------------------------------------------------------------
    def _swmr_datasets(self, sender: str) -> dict[str, h5py.Dataset]:
        datasets = self._datasets.get(sender)
        if datasets is None:
            group = self._sender(sender).group
            datasets = {name: group[name] for name in SWMR_DATASETS if name in group}
            if "EOR" in group:
                eor = group["EOR"]
                datasets.update(
                    {f"EOR/{k}": v for k, v in eor.items() if isinstance(v, h5py.Dataset)}
                )
            self._datasets[sender] = datasets
        return datasets

    def _swmr_records(self, sender: str, start: int, count: int) -> Iterator[Record]:
        for window in self._windows(sender, start, count):
            yield from self._checked(sender, window.records(self._tags))

    def _swmr_raw(self, sender: str, start: int, stop: int) -> Iterator[RawRecord]:
        for window in self._windows(sender, start, stop):
            yield from self._checked(sender, window.raw_records(self._tags))

    def _windows(self, sender: str, start: int, stop: int) -> Iterator[Any]:
        datasets = self._swmr_datasets(sender)
        position = max(start, 0)
        while position < stop:
            window = read_window(datasets, position, min(stop, position + INDEX_WINDOW))
            yield window
            position = window.stop

    def _checked(self, sender: str, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(self._path, f"sender {sender}: {exc}") from exc

    def _sender(self, sender: str) -> SenderGroup:
        return self._senders[self._key(sender)]

    def _key(self, sender: str) -> str:
        """The key of ``sender`` in this file (exact name, else a unique case-insensitive match)."""
        if sender in self._senders:
            return sender
        folded = [key for key in self._senders if key.casefold() == sender.casefold()]
        if len(folded) == 1:
            return folded[0]
        known = ", ".join(self._senders) or "none"
        raise KeyError(f"no sender {sender!r} in {self._path} (senders: {known})")
