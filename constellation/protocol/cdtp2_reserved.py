"""Protocol layer: a CDTP v2 DATA frame of one record whose block is written in place (pure).

:class:`ReservedFrame` allocates the whole frame at once, with room for the message header in
front of the block. The user writes the block into :attr:`ReservedFrame.block`; once the
sequence number is known, :meth:`ReservedFrame.finish` writes the header just before the block
and returns the frame as a view: the block is never copied. The bytes are exactly those of
``encode_data_frame(sender, [DataRecord(sequence, tags, [block])])`` (docs/protocols.md).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

from constellation.errors import EncodeError
from constellation.protocol.cdtp2 import DataRecord, encode_data_frame
from constellation.protocol.common import Protocol

__all__ = ["ReservedFrame"]

#: The longest msgpack uint (``cf`` + 8 bytes) less the one byte of the sequence 0 in the probe.
_SEQ_EXTRA = 8
_UINT64_MAX = (1 << 64) - 1
_BIN8, _BIN16, _BIN32 = struct.Struct(">BB"), struct.Struct(">BH"), struct.Struct(">BI")
#: What an empty block (bin 8 of length 0) ends the probe frame with, after its 1-block array.
_EMPTY_BLOCK_TAIL = b"\x91\xc4\x00"
_packb = msgpack.packb


def _bin_header(size: int) -> bytes:
    """The msgpack bin header of ``size`` bytes, in the shortest form (as msgpack packs)."""
    if size <= 0xFF:
        return _BIN8.pack(0xC4, size)
    if size <= 0xFFFF:
        return _BIN16.pack(0xC5, size)
    return _BIN32.pack(0xC6, size)


class ReservedFrame:
    """The frame of one DATA record ``[sequence, tags, [block]]`` with a block of ``nbytes``.

    ``tags`` are encoded now (a copy of the map: later changes do not travel); invalid tags
    raise :class:`~constellation.errors.EncodeError` here. :attr:`block` is a writable
    one-dimensional byte view; its content is undefined until written.
    """

    __slots__ = ("_buf", "_prefix", "_room", "_tail", "block", "nbytes")

    def __init__(self, sender: str, tags: dict[str, Any], nbytes: int) -> None:
        if type(nbytes) is not int or not 0 <= nbytes <= 0xFFFFFFFF:
            raise EncodeError(f"a reserved block needs 0 .. 2**32-1 bytes, not {nbytes!r}")
        # Encoding the record with sequence 0 and an empty block validates the tags and gives
        # every header byte except the sequence number and the block length.
        probe = encode_data_frame(sender, [DataRecord(0, dict(tags), [b""])])
        lead = len(_packb(Protocol.CDTP2.value)) + len(_packb(sender)) + 3  # type, 0x91, 0x93
        if probe[lead - 2 : lead + 1] != b"\x91\x93\x00" or not probe.endswith(_EMPTY_BLOCK_TAIL):
            raise EncodeError("unexpected layout of a one-record CDTP2 frame")  # never happens
        self._prefix = probe[:lead]
        self._tail = probe[lead + 1 : -2] + _bin_header(nbytes)
        self._room = len(probe) - 2 + _SEQ_EXTRA + len(_bin_header(nbytes))
        self._buf = np.empty(self._room + nbytes, dtype=np.uint8)
        self.nbytes = nbytes
        self.block = memoryview(self._buf)[self._room :]

    def finish(self, sequence: int) -> memoryview:
        """The complete frame with ``sequence`` (a view of the buffer; the block stays put)."""
        if type(sequence) is not int or not 0 <= sequence <= _UINT64_MAX:
            raise EncodeError(f"sequence must be a uint64, not {sequence!r}")
        head = self._prefix + _packb(sequence) + self._tail
        start = self._room - len(head)
        view = memoryview(self._buf)
        view[start : self._room] = head
        return view[start:]
