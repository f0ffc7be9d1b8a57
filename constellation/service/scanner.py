"""File side of the run catalog: which run files a directory holds, and what one file says.

:func:`list_files` only stats (name, size, mtime): the catalog compares these with its rows and
calls :func:`scan_file` (which opens the file through :mod:`constellation.reader`) only for new
or changed files. A file that cannot be read gives an entry with its ``error`` and no senders.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from constellation.errors import InputFileError
from constellation.reader.h5reader import RunReader, open_run
from constellation.reader.summary import condition
from constellation.reader.superblock import read_superblock

__all__ = [
    "FileStat",
    "check_complete",
    "config_digest",
    "list_files",
    "scan_file",
    "sha256_of",
]

_HASH_CHUNK = 4 << 20


class FileStat(NamedTuple):
    """What one ``stat`` says about a run file."""

    name: str
    size: int
    mtime_ns: int


def list_files(directory: Path) -> dict[str, FileStat]:
    """The ``*.h5`` regular files directly in ``directory`` (symbolic links are ignored)."""
    files: dict[str, FileStat] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.endswith(".h5") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            files[entry.name] = FileStat(entry.name, info.st_size, info.st_mtime_ns)
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def config_digest(configs: dict[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the senders' BOR configurations as canonical JSON."""
    text = json.dumps(configs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_complete(path: Path) -> None:
    """Raise InputFileError if ``path`` is shorter than its HDF5 superblock's end of file.

    HDF5 extends the file to that address at every flush, so a shorter file was cut off (its
    copy or disk failed). Opening such a file in SWMR-read mode would retry its metadata reads
    for a very long time; this check reads only the superblock.
    """
    size = path.stat().st_size
    block = read_superblock(path)
    if block.base + block.end > size:
        raise InputFileError(
            path,
            f"truncated: {size} bytes, its superblock says {block.base + block.end} "
            "(writer killed?)",
        )


def scan_file(path: Path) -> dict[str, Any]:
    """Catalog fields of one run file: times, condition, senders, digests, tag text, error.

    ``settled`` is False if the file was read through a view another handle of this process
    held (:attr:`RunReader.shared`): the catalog then rescans it on its next refresh.
    """
    entry: dict[str, Any] = {
        "start": None,
        "end": None,
        "condition": None,
        "senders": {},
        "growing": False,
        "config_digest": None,
        "sha256": None,
        "tags_text": "",
        "error": None,
        "settled": True,
    }
    try:
        check_complete(path)
        with open_run(path) as run:
            entry.update(_describe(run))
            entry["settled"] = not run.shared  # a shared view may be stale: rescan next time
    except (InputFileError, OSError, KeyError, ValueError, RuntimeError) as exc:
        entry["error"] = str(exc).replace(str(path), path.name)  # no server paths in the API
        return entry
    if not entry["growing"]:
        try:
            entry["sha256"] = sha256_of(path)
        except OSError as exc:
            entry["error"] = f"cannot read {path.name}: {exc}"
    return entry


def _describe(run: RunReader) -> dict[str, Any]:
    senders, configs, texts = {}, {}, []
    start = end = None
    for sender in run.senders:
        senders[sender] = run.record_count(sender)
        bor = run.bor(sender)
        configs[sender] = bor.get("configuration", {})
        texts.append(json.dumps(bor.get("user_tags", {}), default=str))
        eor = run.eor(sender)
        if eor is not None:
            texts.append(json.dumps(eor.get("user_tags", {}), default=str))
            meta = eor.get("run_metadata", {})
            start = start or _text(meta.get("time_start"))
            end = end or _text(meta.get("time_end"))
    eor_condition = condition(run)
    return {
        "start": start,
        "end": end,
        "condition": None if eor_condition == "no EOR" else eor_condition,
        "senders": senders,
        "growing": run.swmr_read,
        "config_digest": config_digest(configs),
        "tags_text": "\n".join(texts),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
