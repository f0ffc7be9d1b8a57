"""H5DataWriter file-format layer: the ``compression`` option of block data.

Names map to HDF5 filters; plugin filters come from ``hdf5plugin`` so that files open with plain
h5py once ``import hdf5plugin`` has run. ``None``, ``""`` and ``"none"`` mean no compression.

Blosc filters start worker threads per chunk by default; for the small chunks written here that
costs more than it gains (4x slower for 1 KiB blocks), so the writer's launcher calls
:func:`single_blosc_thread` (process-wide: ``BLOSC_NTHREADS=1`` unless the environment already
sets it); choosing a filter changes nothing in the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from constellation.errors import ConfigError

__all__ = ["COMPRESSION_NAMES", "compression_kwargs", "single_blosc_thread"]


def _blosc2(cname: Any) -> Callable[[], Mapping[str, Any]]:
    def make() -> Mapping[str, Any]:
        import hdf5plugin

        return hdf5plugin.Blosc2(cname=cname, clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)

    return make


def _blosc(cname: Any) -> Callable[[], Mapping[str, Any]]:
    def make() -> Mapping[str, Any]:
        import hdf5plugin

        return hdf5plugin.Blosc(cname=cname, clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)

    return make


def _plugin(name: str) -> Callable[[], Mapping[str, Any]]:
    def make() -> Mapping[str, Any]:
        import hdf5plugin

        return getattr(hdf5plugin, name)()  # type: ignore[no-any-return]

    return make


_FILTERS: dict[str, Callable[[], Mapping[str, Any]]] = {
    "blosc2-lz4": _blosc2("lz4"),
    "blosc2-zstd": _blosc2("zstd"),
    "blosc-lz4": _blosc("lz4"),
    "blosc-zstd": _blosc("zstd"),
    "zstd": _plugin("Zstd"),
    "lz4": _plugin("LZ4"),
    "bitshuffle-lz4": _plugin("Bitshuffle"),
    "gzip": lambda: {"compression": "gzip", "compression_opts": 4},
}

#: Every accepted value of the ``compression`` option.
COMPRESSION_NAMES: tuple[str, ...] = ("none", *_FILTERS)


def compression_kwargs(name: str | None) -> dict[str, Any]:
    """``create_dataset`` keyword arguments for the named filter (empty for no compression).

    Raises :class:`~constellation.errors.ConfigError` (key ``compression``) for unknown names
    or when ``hdf5plugin`` is missing for a plugin filter.
    """
    key = (name or "none").strip().lower()
    if key == "none":
        return {}
    make = _FILTERS.get(key)
    if make is None:
        choices = ", ".join(COMPRESSION_NAMES)
        raise ConfigError("compression", f"unknown compression '{name}' (one of: {choices})")
    try:
        return dict(make())
    except ImportError as exc:
        raise ConfigError("compression", f"'{name}' needs the hdf5plugin package") from exc


def single_blosc_thread() -> None:
    """Process-wide tuning, for launchers only: one blosc thread per compression call unless
    ``BLOSC_NTHREADS`` is set (blosc reads it when it compresses)."""
    os.environ.setdefault("BLOSC_NTHREADS", "1")
