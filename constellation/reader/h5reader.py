"""Offline decoding layer: read H5DataWriter files (SPEC §7) in both layouts, also while written.

:func:`open_run` opens a file read-only (in SWMR-read mode when possible, so a file still being
written in SWMR mode can be read; :meth:`RunReader.refresh` then shows newer records) and
returns a :class:`RunReader`: writers, senders, BOR/EOR maps, record counts and records as
``(sequence, tags, blocks)`` with blocks typed by the ``dtype`` tag.

Layouts. Sender groups ``<Type.Name>`` are found under every writer group (a top-level group
with a ``swmr_mode`` or ``constellation_version`` attribute) and, for files of other writers,
at the top level. A sender group with a ``data_idx`` dataset uses the SWMR layout, otherwise the
normal layout (one ``data_<seq>`` group per record with ``block_<n>`` datasets).

End-of-data rule (SWMR layout). Capacity past the last record is zero-filled, so the records
are the leading index entries that are valid: ``meta_idx`` strictly increasing (a record's meta
JSON is never empty) and ``data_idx`` non-decreasing, both within their dataset's extent; the
first entry that breaks this (typically a 0) ends the records. Without ``meta``/``meta_idx``
(files of other tools) the first 0 or decreasing ``data_idx`` entry ends them. Records whose
``data_idx`` is 0 at the start of the file are accepted only if their meta says they are empty.

Values. Attribute maps come back as plain Python values (numpy scalars → int/float/bool, arrays →
lists, strings → str) with dotted keys un-flattened into nested maps; a key that is also the
prefix of another (``a`` and ``a.b``) keeps the longer keys flat. What the writer converted stays
converted: ``None`` was stored as the string ``"None"`` and is read as ``"None"``; datetimes are
read as ISO 8601 strings. SWMR record tags and SWMR EOR maps come from JSON and keep their
nesting; the writer's ``block_lengths`` and ``sequence`` keys are removed from the tags.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
from h5py import h5a, h5d, h5g, h5s, h5t

from constellation.errors import InputFileError

try:  # registers the compression filters of H5DataWriter files (optional)
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - hdf5plugin is part of the hdf5 extra
    pass

__all__ = ["Record", "RunReader", "SenderStats", "open_run", "unflatten"]

_WRITER_ATTRS = ("swmr_mode", "constellation_version")
_RECORD = re.compile(r"^data_(\d+)$")
_BLOCK = re.compile(r"^block_(\d+)$")
_SWMR_DATASETS = ("data_idx", "meta_idx", "meta", "data")  # refresh order: indices first
_LENGTH_KEYS = ("block_lengths", "frame_lengths")
_INDEX_WINDOW = 1 << 16  # index entries read at once
_BYTE_WINDOW = 8 << 20  # data bytes read at once (at least one record)


class Record(NamedTuple):
    """One record: sequence number, tag map, and its blocks as typed numpy arrays."""

    sequence: int
    tags: dict[str, Any]
    blocks: list[np.ndarray]


class SenderStats(NamedTuple):
    """Record count, first/last sequence numbers (None without records) and block bytes."""

    records: int
    first_sequence: int | None
    last_sequence: int | None
    data_bytes: int


class _Sender(NamedTuple):
    name: str
    writer: str | None
    group: h5py.Group
    layout: str  # "normal" | "swmr"


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
    """Open plainly if possible (a closed file); in SWMR-read mode if a SWMR writer has it open.

    A plain open comes first: SWMR-read mode retries failed metadata reads many times (it takes
    them for a writer's changes in flight), which would make a damaged file very slow to fail.
    """
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
        self._writers = [name for name, obj in h5file.items() if _is_writer(obj)]
        self._senders = _discover(h5file, self._writers)
        self._datasets: dict[str, dict[str, h5py.Dataset]] = {}
        self._counts: dict[str, int] = {}
        self._names: dict[str, list[tuple[int, str]]] = {}

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
        return _attrs_dict(self._file[writer].attrs)

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
        return {key: _attr_group(group, f"BOR/{key}") for key in ("user_tags", "configuration")}

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
            return unflatten(_attrs_dict(obj.attrs))
        if self._swmr:
            obj.refresh()
        raw = obj[()].tobytes()
        return json.loads(raw.decode("utf-8")) if raw else None

    def record_count(self, sender: str) -> int:
        """Number of records of ``sender`` visible now (see the end-of-data rule)."""
        sender = self._key(sender)
        info = self._sender(sender)
        if info.layout == "normal":
            return len(self._record_names(sender))
        if sender not in self._counts:
            self._counts[sender] = _swmr_count(self._swmr_datasets(sender))
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
            nbytes = sum(_normal_bytes(h5g.open(gid, name.encode())) for _, name in names)
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
            matches = ((_RECORD.match(name), name) for name in _link_names(group.id))
            names = sorted((int(m.group(1)), name) for m, name in matches if m)
            self._names[sender] = names
        return names

    def _normal_records(self, sender: str, start: int) -> Iterator[Record]:
        gid = self._sender(sender).group.id
        for sequence, name in self._record_names(sender)[max(start, 0) :]:
            record = h5g.open(gid, name.encode())
            tags = unflatten(_read_attrs(record))
            blocks = [_read_dataset(h5d.open(record, block)) for block in _block_names(record)]
            yield Record(sequence, tags, blocks)

    # --- SWMR layout --------------------------------------------------------------------------
    def _swmr_datasets(self, sender: str) -> dict[str, h5py.Dataset]:
        datasets = self._datasets.get(sender)
        if datasets is None:
            group = self._sender(sender).group
            datasets = {name: group[name] for name in _SWMR_DATASETS if name in group}
            if "EOR" in group:
                eor = group["EOR"]
                datasets.update(
                    {f"EOR/{k}": v for k, v in eor.items() if isinstance(v, h5py.Dataset)}
                )
            self._datasets[sender] = datasets
        return datasets

    def _swmr_records(self, sender: str, start: int, count: int) -> Iterator[Record]:
        datasets = self._swmr_datasets(sender)
        position = max(start, 0)
        while position < count:
            window = _read_window(datasets, position, min(count, position + _INDEX_WINDOW))
            try:
                yield from window.records()
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputFileError(self._path, f"sender {sender}: {exc}") from exc
            position = window.stop

    def _sender(self, sender: str) -> _Sender:
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


# --- discovery ----------------------------------------------------------------------------------
def _is_writer(obj: Any) -> bool:
    return isinstance(obj, h5py.Group) and any(key in obj.attrs for key in _WRITER_ATTRS)


def _is_sender(obj: Any) -> bool:
    if not isinstance(obj, h5py.Group):
        return False
    return "BOR" in obj or "EOR" in obj or "data_idx" in obj


def _discover(h5file: h5py.File, writers: list[str]) -> dict[str, _Sender]:
    found: list[_Sender] = []
    for writer in writers:
        for name, obj in h5file[writer].items():
            if _is_sender(obj):
                found.append(_Sender(name, writer, obj, _layout(obj)))
    for name, obj in h5file.items():
        if name not in writers and _is_sender(obj):
            found.append(_Sender(name, None, obj, _layout(obj)))
    counts: dict[str, int] = {}
    for sender in found:
        counts[sender.name] = counts.get(sender.name, 0) + 1
    return {
        (s.name if counts[s.name] == 1 or s.writer is None else f"{s.writer}/{s.name}"): s
        for s in found
    }


def _layout(group: h5py.Group) -> str:
    return "swmr" if "data_idx" in group else "normal"


def _link_names(gid: h5g.GroupID) -> list[str]:
    """Names of a group's links in one HDF5 iteration (h5py's iterator costs one per name)."""
    names: list[str] = []
    gid.links.iterate(lambda name: names.append(name.decode("utf-8", "replace")))
    return names


def _block_names(record: h5g.GroupID) -> list[bytes]:
    matches = ((_BLOCK.match(name), name) for name in _link_names(record))
    return [name.encode() for _, name in sorted((int(m.group(1)), n) for m, n in matches if m)]


def _normal_bytes(record: h5g.GroupID) -> int:
    total = 0
    for name in _block_names(record):
        dset = h5d.open(record, name)
        total += dset.get_space().get_simple_extent_npoints() * dset.get_type().get_size()
    return total


def _read_dataset(dset: h5d.DatasetID) -> np.ndarray:
    """A whole block dataset as a 1-D array (low-level: no high-level wrapper per record)."""
    array = np.empty(dset.shape, dtype=dset.dtype)
    if array.size:
        dset.read(h5s.ALL, h5s.ALL, array)
    return np.atleast_1d(array)


def _read_attrs(obj: Any) -> dict[str, Any]:
    """All attributes of an object (low-level), converted by :func:`_py`."""
    values = {}
    for index in range(h5a.get_num_attrs(obj)):
        attr = h5a.open(obj, index=index)
        values[attr.name.decode("utf-8", "replace")] = _py(_read_attr(attr))
    return values


def _read_attr(attr: h5a.AttrID) -> Any:
    shape = attr.shape
    if shape is None:
        return None
    dtype = attr.dtype
    array = np.zeros(shape, dtype=dtype)
    attr.read(array, mtype=h5t.py_create(dtype))
    info = h5t.check_string_dtype(dtype)
    if info is not None and info.length is None:  # variable-length strings arrive as bytes
        decoded = [_text(item, info.encoding) for item in array.flat]
        array = np.array(decoded, dtype=object).reshape(array.shape)
    return array[()] if array.ndim == 0 else array


# --- values -------------------------------------------------------------------------------------
def _attr_group(group: h5py.Group, path: str) -> dict[str, Any]:
    obj = group.get(path)
    if not isinstance(obj, h5py.Group):
        return {}
    return unflatten(_attrs_dict(obj.attrs))


def _attrs_dict(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {name: _py(attrs[name]) for name in attrs}


def _text(item: Any, encoding: str) -> Any:
    return item.decode(encoding, "replace") if isinstance(item, bytes) else item


def _py(value: Any) -> Any:
    """Plain Python value of an attribute as h5py returns it."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.void):
        return value.tobytes()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_py(item) for item in value.tolist()] if value.ndim else _py(value[()])
    if isinstance(value, h5py.Empty):
        return None
    return value


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest dotted keys (``{"a.b": 1}`` → ``{"a": {"b": 1}}``); see the module docstring."""
    leaves = set(flat)
    result: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
        if "" in parts or any(prefix in leaves for prefix in prefixes):
            result[key] = value
            continue
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


# --- SWMR end-of-data rule and windows ------------------------------------------------------------
def _swmr_count(datasets: Mapping[str, h5py.Dataset]) -> int:
    """Number of valid leading index entries (the end-of-data rule)."""
    data_idx, meta_idx = datasets["data_idx"], datasets.get("meta_idx")
    data_cap = int(datasets["data"].shape[0])
    meta_cap = int(datasets["meta"].shape[0]) if "meta" in datasets else 0
    total = int(data_idx.shape[0])
    if meta_idx is not None:
        total = min(total, int(meta_idx.shape[0]))
    count, prev_data, prev_meta = 0, 0, 0
    for first in range(0, total, _INDEX_WINDOW):
        last = min(total, first + _INDEX_WINDOW)
        data_ends = np.asarray(data_idx[first:last], dtype=np.int64)
        meta_ends = None if meta_idx is None else np.asarray(meta_idx[first:last], np.int64)
        valid = _valid_prefix(data_ends, prev_data, data_cap, meta_ends, prev_meta, meta_cap)
        count += valid
        if valid < last - first:
            break
        prev_data = int(data_ends[-1])
        prev_meta = 0 if meta_ends is None else int(meta_ends[-1])
    if meta_idx is not None and count:
        count = _leading_zero_check(datasets, count)
    return count


def _valid_prefix(
    data_ends: np.ndarray,
    prev_data: int,
    data_cap: int,
    meta_ends: np.ndarray | None,
    prev_meta: int,
    meta_cap: int,
) -> int:
    previous = np.concatenate(([prev_data], data_ends[:-1]))
    bad = (data_ends < previous) | (data_ends > data_cap)
    if meta_ends is None:
        bad |= data_ends == 0
    else:
        meta_previous = np.concatenate(([prev_meta], meta_ends[:-1]))
        bad |= (meta_ends <= meta_previous) | (meta_ends > meta_cap)
    index = np.flatnonzero(bad)
    return int(index[0]) if index.size else int(data_ends.shape[0])


def _leading_zero_check(datasets: Mapping[str, h5py.Dataset], count: int) -> int:
    """Leading ``data_idx`` zeros count only for records whose meta says they are empty."""
    nonzero = np.flatnonzero(np.asarray(datasets["data_idx"][:count]))
    zeros = int(nonzero[0]) if nonzero.size else count
    if zeros == 0:
        return count
    window = _read_window(datasets, 0, zeros)
    for position in range(zeros):
        if sum(window.lengths(position)):
            return position
    return count


class _Window(NamedTuple):
    """Records ``[start, stop)`` of a SWMR sender with their bytes read in one go."""

    start: int
    stop: int
    data_ends: np.ndarray  # absolute, with the end of the previous record first
    meta_ends: np.ndarray
    data: np.ndarray
    meta: bytes

    def meta_of(self, position: int) -> dict[str, Any]:
        i = position - self.start
        begin, end = (int(v - self.meta_ends[0]) for v in self.meta_ends[i : i + 2])
        tags: dict[str, Any] = json.loads(self.meta[begin:end].decode("utf-8"))
        return tags

    def lengths(self, position: int) -> list[int]:
        tags = self.meta_of(position)
        for key in _LENGTH_KEYS:
            if key in tags:
                return [int(n) for n in tags[key]]
        begin, end = self._span(position)
        return [end - begin]

    def _span(self, position: int) -> tuple[int, int]:
        i = position - self.start
        base = self.data_ends[0]
        return int(self.data_ends[i] - base), int(self.data_ends[i + 1] - base)

    def records(self) -> Iterator[Record]:
        for position in range(self.start, self.stop):
            yield self.record(position)

    def record(self, position: int) -> Record:
        tags = self.meta_of(position) if self.meta_ends.size else {}
        lengths = next((tags.pop(key) for key in _LENGTH_KEYS if key in tags), None)
        sequence = tags.pop("sequence", position + 1)
        begin, end = self._span(position)
        payload = self.data[begin:end]
        if lengths is None:
            lengths = [end - begin]
        if sum(lengths) != end - begin:
            raise ValueError(
                f"record {position}: block lengths {lengths} do not match its "
                f"{end - begin} bytes in 'data'"
            )
        return Record(int(sequence), tags, _split(payload, lengths, tags.get("dtype")))


def _read_window(datasets: Mapping[str, h5py.Dataset], start: int, stop: int) -> _Window:
    """Read index entries and the data/meta bytes of records ``[start, stop)``."""
    first = max(start - 1, 0)
    data_ends = _ends(datasets["data_idx"], first, start, stop)
    stop = start + _byte_limited(data_ends)
    data_ends = data_ends[: stop - start + 1]
    data = np.asarray(datasets["data"][int(data_ends[0]) : int(data_ends[-1])], dtype=np.uint8)
    if "meta_idx" in datasets:
        meta_ends = _ends(datasets["meta_idx"], first, start, stop)
        meta = datasets["meta"][int(meta_ends[0]) : int(meta_ends[-1])].tobytes()
    else:
        meta_ends, meta = np.empty(0, dtype=np.int64), b""
    return _Window(start, stop, data_ends, meta_ends, data, meta)


def _ends(index: h5py.Dataset, first: int, start: int, stop: int) -> np.ndarray:
    values = np.asarray(index[first:stop], dtype=np.int64)
    return values if start > 0 else np.concatenate(([0], values))


def _byte_limited(data_ends: np.ndarray) -> int:
    """Records of the window that fit in the byte budget (at least one)."""
    limit = data_ends[0] + _BYTE_WINDOW
    fitting = int(np.searchsorted(data_ends[1:], limit, side="right"))
    return max(1, fitting)


_DTYPES: dict[str, np.dtype[Any] | None] = {}


def _dtype(name: Any) -> np.dtype[Any] | None:
    key = str(name)
    if key not in _DTYPES:
        try:
            dtype: np.dtype[Any] | None = np.dtype(key)
            if dtype is not None and (dtype.itemsize == 0 or dtype.hasobject):
                dtype = None
        except (TypeError, ValueError):
            dtype = None
        _DTYPES[key] = dtype
    return _DTYPES[key]


def _split(payload: np.ndarray, lengths: list[int], dtype_name: Any) -> list[np.ndarray]:
    """Cut a record's bytes into blocks typed by the ``dtype`` tag (uint8 if it does not fit)."""
    dtype = None if dtype_name is None else _dtype(dtype_name)
    blocks = []
    offset = 0
    for length in lengths:
        raw = payload[offset : offset + int(length)]
        offset += int(length)
        if dtype is not None and raw.nbytes % dtype.itemsize == 0:
            raw = raw.view(dtype)
        blocks.append(raw)
    return blocks
