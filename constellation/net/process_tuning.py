"""Process-wide tuning of the data path: fewer cyclic garbage collections, glibc malloc thresholds.

:data:`gc_relief` raises the collector's first threshold while a sender or receiver is active;
:func:`tune_allocator` keeps large message buffers in the C heap. Both act on the whole process,
so only the launcher (``constellation.cli``) turns them on.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import platform
import sys
import threading

__all__ = ["gc_relief", "tune_allocator"]

log = logging.getLogger("constellation.net.cdtp")


class _GcRelief:
    """Process-wide: a higher first threshold of the cyclic garbage collector while data flows.

    The data path allocates a few acyclic containers per record (tuples, lists, tag maps); with
    the default threshold (700) the collector runs every few hundred records and rescans the
    records still queued, which costs more than encoding or decoding them. While at least one
    sender or receiver is active, generation 0 is collected every ``threshold`` allocations
    instead; reference counting frees the records either way.
    """

    def __init__(self, threshold: int = 100_000) -> None:
        self._threshold = threshold
        #: Off until the launcher enables it: a library user's process is left alone.
        self.enabled = False
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[int, int, int] | None = None

    def enable(self) -> None:
        """Let later :meth:`acquire` calls raise the threshold (the launcher calls this)."""
        self.enabled = True

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1 and self.enabled:
                self._saved = gc.get_threshold()
                first, *rest = self._saved
                gc.set_threshold(max(first, self._threshold), *rest)

    def release(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._saved is not None:
                gc.set_threshold(*self._saved)
                self._saved = None


#: The shared :class:`_GcRelief` of this process (``acquire`` / ``release`` in pairs).
gc_relief = _GcRelief()


_allocator_tuned: bool | None = None  # None: not tried yet
_allocator_lock = threading.Lock()


def tune_allocator() -> bool:
    """Keep large buffers in the C heap of this process instead of mapping them anew (glibc).

    Data messages are 128 KiB and more; glibc maps and unmaps such blocks (or trims its heap)
    on almost every message, and the page faults of the fresh memory cost about a third of the
    CPU time of the data path. Raising the mmap and trim thresholds lets freed message buffers
    be reused; freed memory then returns to the system only above 256 MiB of free heap.
    Tried once per process; only the launcher calls it (``CONSTELLATION_MALLOC_TUNING=0``
    makes it not call it). Returns whether the settings are in effect.
    """
    global _allocator_tuned
    with _allocator_lock:
        if _allocator_tuned is None:
            _allocator_tuned = _set_malloc_thresholds()
            log.debug("malloc thresholds raised for the data path: %s", _allocator_tuned)
        return _allocator_tuned


def _set_malloc_thresholds() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(
        mallopt(m_mmap_threshold, 16 * 1024 * 1024) and mallopt(m_trim_threshold, 256 * 1024 * 1024)
    )
