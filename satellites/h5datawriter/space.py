"""H5DataWriter file-format layer: disk space reserved ahead of HDF5, so a full disk is harmless.

HDF5 is not journaled: when the disk fills up in the middle of a metadata flush, some metadata
blocks are rewritten and others are not, and the file can become unreadable. :class:`DiskReserve`
keeps free space allocated (``posix_fallocate``) past HDF5's end of allocation, at least
``HEADROOM`` bytes plus the next batch, and takes it again after HDF5 truncated the file to its
end of allocation (which a flush may do). When that reservation cannot grow, the writer stops with
an error *before* handing the batch to HDF5, and closing the file only writes into space that
is already allocated. After the file is closed, the unused reservation is cut off again.

Platforms without ``os.posix_fallocate`` (macOS, Windows) or file systems that do not support
it get no reservation; writing still works, without this protection.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

__all__ = ["HEADROOM", "STEP", "DiskReserve"]

#: Free bytes kept allocated past HDF5's end of allocation, beyond the announced batch.
HEADROOM = 32 * 1024 * 1024
#: Extra bytes reserved at each growth (fewer fallocate calls).
STEP = 64 * 1024 * 1024
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP}
log = logging.getLogger(__name__)


class DiskReserve:
    """Keeps disk space allocated ahead of an HDF5 file's end of allocation."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._reserved = 0
        self._fd: int | None = None
        if hasattr(os, "posix_fallocate"):
            self._fd = os.open(path, os.O_WRONLY)

    @property
    def active(self) -> bool:
        """False where the platform or file system cannot reserve space."""
        return self._fd is not None

    def ensure(self, end_of_allocation: int, upcoming: int) -> None:
        """Reserve up to ``end_of_allocation + upcoming + HEADROOM``; raise OSError if full."""
        if self._fd is None:
            return
        needed = end_of_allocation + upcoming + HEADROOM
        # HDF5 cuts the file to its end of allocation when it flushes (e.g. when SWMR starts):
        # the space past the cut is free again and must be taken anew.
        self._reserved = min(self._reserved, os.fstat(self._fd).st_size)
        if needed <= self._reserved:
            return
        for target in (needed + STEP, needed):
            try:
                os.posix_fallocate(self._fd, self._reserved, target - self._reserved)
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    log.warning("no disk space reservation for %s: %s", self._path, exc)
                    self._stop()
                    return
                if target == needed:
                    raise
                continue
            self._reserved = target
            log.debug("reserved %d bytes in %s", target, self._path.name)
            return

    def release(self, end_of_allocation: int) -> None:
        """After the HDF5 file is closed: cut the file back to its end of allocation.

        ``end_of_allocation`` is ``FileID.get_filesize()`` taken after the last flush and
        before closing (while the file is open, HDF5 reports its end of allocation there).
        """
        self.abandon()
        if self._reserved and self._path.stat().st_size > end_of_allocation > 0:
            os.truncate(self._path, end_of_allocation)
        self._reserved = 0

    def abandon(self) -> None:
        """Stop reserving (keeps the file as it is). Idempotent."""
        self._stop()

    def _stop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
