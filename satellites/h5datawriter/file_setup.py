"""H5DataWriter file layer: naming, creating and describing the run file (no layout logic).

:func:`output_path` picks ``data_<run_id>.h5`` (with a ``_<n>`` suffix in rename mode),
:func:`open_new` creates it exclusively, :func:`write_header` and :func:`write_attr_group` write
the writer's group and the BOR/EOR attribute groups, and :func:`describe` / :func:`attempt`
turn h5py and OS errors into the texts that :class:`~constellation.errors.OutputFileError`
carries.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from constellation.errors import ConfigError, OutputFileError, OutputFileExistsError
from satellites.h5datawriter.attrs import to_attr_items

__all__ = [
    "FILE_CONFLICTS",
    "H5_ERRORS",
    "attempt",
    "check_name",
    "describe",
    "end_of_allocation",
    "make_dir",
    "open_new",
    "output_path",
    "write_attr_group",
    "write_header",
]

#: Accepted values of ``file_conflict``: fail on an existing file, or add a ``_<n>`` suffix.
FILE_CONFLICTS = ("error", "rename")
#: What h5py and the OS raise for a failed file operation.
H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError)

_RUN_ID = re.compile(r"^[\w-]+$")
_CHUNK_CACHE = 4 * 1024 * 1024
_MAX_RENAME = 10_000


def output_path(directory: str | os.PathLike[str], run_id: str, file_conflict: str) -> Path:
    """``data_<run_id>.h5`` in ``directory``; in rename mode the first free ``_<n>`` suffix."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run identifier {run_id!r} (must match {_RUN_ID.pattern})")
    if file_conflict not in FILE_CONFLICTS:
        raise ConfigError("file_conflict", f"must be 'error' or 'rename', not {file_conflict!r}")
    base = Path(directory) / f"data_{run_id}.h5"
    if file_conflict == "error" or not base.exists():
        return base
    for suffix in range(1, _MAX_RENAME):
        candidate = base.with_name(f"data_{run_id}_{suffix}.h5")
        if not candidate.exists():
            return candidate
    raise OutputFileError(base, f"no free file name up to suffix _{_MAX_RENAME - 1}")


def attempt(action: Callable[[], object]) -> BaseException | None:
    """Run ``action``; return the h5py/OS error it raised, if any."""
    try:
        action()
    except H5_ERRORS as exc:
        return exc
    return None


def end_of_allocation(h5file: h5py.File) -> int:
    """HDF5's end of allocated space (what ``get_filesize`` reports while the file is open)."""
    try:
        return int(h5file.id.get_filesize())
    except H5_ERRORS:
        return 0


def check_name(name: str, what: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid {what} name {name!r} for an HDF5 group")


def make_dir(directory: str | os.PathLike[str]) -> Path:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create the output directory: {describe(exc)}"
        raise OutputFileError(path, reason) from exc
    return path


def open_new(path: Path, libver: tuple[str, str]) -> h5py.File:
    """Create ``path`` exclusively (an existing file is never overwritten)."""
    if path.exists():
        raise OutputFileExistsError(path)
    try:
        return h5py.File(
            path, "x", libver=libver, rdcc_nbytes=_CHUNK_CACHE, rdcc_w0=1.0, track_order=False
        )
    except OSError as exc:
        if path.exists():
            raise OutputFileExistsError(path) from exc
        raise OutputFileError(path, f"cannot create the file: {describe(exc)}") from exc


def write_header(root: h5py.Group, version: str, swmr: bool) -> None:
    root.attrs["constellation_version"] = version
    root.attrs["date_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
    root.attrs["swmr_mode"] = np.bool_(swmr)


def write_attr_group(parent: h5py.Group, name: str, mapping: Mapping[str, Any]) -> None:
    group = parent.create_group(name)
    for key, value in to_attr_items(mapping).items():
        group.attrs.create(key, value)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    errno = getattr(exc, "errno", None)
    strerror = getattr(exc, "strerror", None)
    if errno and strerror and strerror not in text:
        text = f"{text} ({strerror})"
    return text
