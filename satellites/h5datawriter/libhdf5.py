"""H5DataWriter file layer: the libhdf5 calls of the hot loops (normal and SWMR), through ctypes.

h5py's low-level calls hold the GIL while libhdf5 works, so the disk thread writing records
and the receive thread decoding the next message never run at the same time. A function called
through :mod:`ctypes` releases the GIL for the duration of the call: the 10-15 µs that libhdf5
needs to copy a record's template into the file (or a batch into the SWMR datasets) then
overlap with the receive thread.

Mixing h5py and direct calls is only safe on *the same* library instance (object ids are
per-instance tables), so the functions are looked up through h5py's own extension module
(``dlsym`` searches the libraries it was linked with) and :func:`raw` checks that the instance
knows an h5py property list and reports h5py's version. If any of this fails (another
platform, a static build), :func:`raw` returns None and callers use h5py. libhdf5 here is not
built thread-safe: h5py serialises its calls with its global lock ``phil``, and callers must
hold that lock (:data:`PHIL`) around these calls too.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
from typing import Any

import h5py
from h5py import h5p, h5s

__all__ = ["H5P_DEFAULT", "H5S_ALL", "PHIL", "RawHdf5", "raw"]

#: ``H5S_ALL`` and ``H5P_DEFAULT``: both ``(hid_t)0`` since HDF5 1.10 (the first is checked
#: against h5py in :meth:`RawHdf5.same_library`).
H5S_ALL = 0
H5P_DEFAULT = 0
#: h5py's global lock (around every libhdf5 call h5py makes); hold it around every call of
#: :class:`RawHdf5`. Should an h5py version have none, :func:`raw` returns None.
PHIL: Any = getattr(getattr(h5py, "_objects", None), "phil", None)

_HID = ctypes.c_int64
_HERR = ctypes.c_int
log = logging.getLogger(__name__)
_UNSET: Any = object()
_loaded: Any = _UNSET


class RawHdf5:
    """``H5Dwrite`` and ``H5Ocopy`` of the library h5py uses (each returns < 0 on failure)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.dwrite = _function(lib, "H5Dwrite", _HERR, [_HID] * 5 + [ctypes.c_void_p])
        self.ocopy = _function(
            lib, "H5Ocopy", _HERR, [_HID, ctypes.c_char_p, _HID, ctypes.c_char_p, _HID, _HID]
        )
        self._get_chunk = _function(
            lib, "H5Pget_chunk", ctypes.c_int, [_HID, ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
        )
        self._is_valid = _function(lib, "H5Iis_valid", ctypes.c_int, [_HID])
        self._version = _function(
            lib, "H5get_libversion", _HERR, [ctypes.POINTER(ctypes.c_uint)] * 3
        )

    def same_library(self) -> bool:
        """True if this is h5py's library instance: same version, and it reads an h5py id."""
        parts = [ctypes.c_uint() for _ in range(3)]
        if self._version(*map(ctypes.byref, parts)) < 0:
            return False
        if tuple(part.value for part in parts) != h5py.h5.get_libversion():
            return False
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_chunk((4099,))
        dims = (ctypes.c_uint64 * 1)()
        with PHIL:
            if self._is_valid(dcpl.id) <= 0 or self._get_chunk(dcpl.id, 1, dims) != 1:
                return False
        return dims[0] == 4099 and h5s.ALL.id == H5S_ALL


def _function(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


def raw() -> RawHdf5 | None:
    """The direct calls, or None where they cannot be shown to reach h5py's library (cached)."""
    global _loaded
    if _loaded is _UNSET:
        _loaded = _load()
    return _loaded  # type: ignore[no-any-return]


def _load() -> RawHdf5 | None:
    if PHIL is None:
        reason = "h5py has no global lock to share"
    else:
        try:
            functions = RawHdf5(ctypes.CDLL(importlib.import_module("h5py.defs").__file__))
            if functions.same_library():
                return functions
            reason = "the library found is not h5py's instance"
        except (ImportError, OSError, AttributeError, TypeError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
    log.info("libhdf5 direct calls unavailable (%s): writing through h5py only", reason)
    return None
