"""The HDF5 superblock of a run file, read with plain file I/O (no HDF5 library state).

Used to tell whether a writer holds a file open: HDF5 (superblock version 2 and 3, the ones of
SWMR files) sets the *file consistency flags* while a writer has the file open and clears them
when it closes it. Reading them from disk does not depend on the handles this process holds
(HDF5 shares one open file between the handles of a process, whatever mode each asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from constellation.errors import InputFileError

__all__ = ["SWMR_WRITE", "WRITE_ACCESS", "Superblock", "read_superblock"]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_BASES = (0, 512, 1024, 2048, 4096)  # where a superblock may sit
#: Offset of the end-of-file address after the size-of-offsets byte, per superblock version.
_EOF_FIELD = {0: 24, 1: 28, 2: 12, 3: 12}
_FLAGS_OFFSET = 11  # versions 2 and 3: signature, version, sizes of offsets and lengths, flags
WRITE_ACCESS = 0x01
SWMR_WRITE = 0x04


class Superblock(NamedTuple):
    """Where the superblock sits, its version, the end-of-file address and the flags."""

    base: int
    version: int
    end: int
    flags: int

    @property
    def writer_open(self) -> bool:
        """True while a writer has the file open (or died without closing it)."""
        return bool(self.flags & (WRITE_ACCESS | SWMR_WRITE))

    @property
    def swmr_writing(self) -> bool:
        """True while a writer has the file open in SWMR-write mode."""
        return bool(self.flags & SWMR_WRITE)


def read_superblock(path: Path) -> Superblock:
    """The superblock of ``path``; InputFileError for a file that has none or a damaged one."""
    with path.open("rb") as stream:
        for base in _BASES:
            stream.seek(base)
            head = stream.read(64)
            if head[:8] == _SIGNATURE:
                break
        else:
            raise InputFileError(path, "no HDF5 superblock (not an HDF5 file)")
    version = head[8]
    if version not in _EOF_FIELD:
        raise InputFileError(path, f"not a readable HDF5 file: superblock version {version}")
    offsets = head[13] if version < 2 else head[9]
    field = _EOF_FIELD[version] + 2 * offsets
    if offsets not in (4, 8) or len(head) < field + offsets:
        raise InputFileError(path, "damaged HDF5 superblock")
    end = int.from_bytes(head[field : field + offsets], "little")
    flags = head[_FLAGS_OFFSET] if version >= 2 else 0
    return Superblock(base, version, end, flags)
