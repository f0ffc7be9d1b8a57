"""Protocol layer: a CDTP v2 DATA frame of one record whose block is written in place (pure).

:class:`ReservedFrame` allocates the whole frame at once, with room for the message header in
front of the block. The user writes the block into :attr:`ReservedFrame.block`; once the
sequence number is known, :meth:`ReservedFrame.finish` writes the header just before the block
and returns the frame as a view: the block is never copied. The bytes are exactly those of
``encode_data_frame(sender, [DataRecord(sequence, tags, [block])])`` (docs/protocols.md).
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import msgpack
import numpy as np

from constellation.errors import EncodeError
from constellation.protocol.cdtp2 import CDTPType, block_packer
from constellation.protocol.common import Protocol, validate_wire_map

__all__ = ["ReservedFrame"]

#: The longest msgpack uint: ``cf`` and 8 bytes.
_MAX_UINT_BYTES = 9
_UINT64_MAX = (1 << 64) - 1
_U8, _U16, _U32 = (struct.Struct(f">B{c}") for c in "BHI")
#: The end of a record's header before its block: a one-block array.
_ONE_BLOCK = b"\x91"


def _bin_header(size: int) -> bytes:
    """The msgpack bin header of ``size`` bytes, in the shortest form (as msgpack packs)."""
    if size <= 0xFF:
        return _U8.pack(0xC4, size)
    if size <= 0xFFFF:
        return _U16.pack(0xC5, size)
    return _U32.pack(0xC6, size)


@lru_cache(maxsize=64)
def _prefix(sender: str) -> bytes:
    """Identifier, sender, DATA, a one-record array and the record's 3-element array head."""
    if not isinstance(sender, str):
        raise EncodeError(f"sender must be str, not {type(sender).__name__}")
    parts = (Protocol.CDTP2.value, sender, int(CDTPType.DATA))
    return b"".join(msgpack.packb(part) for part in parts) + b"\x91\x93"


def _tag_bytes(tags: dict[str, Any]) -> bytes:
    if not tags:
        if not isinstance(tags, dict):
            raise EncodeError(f"tags: expected a dict, got {type(tags).__name__}")
        return b"\x80"
    validate_wire_map(tags, "tags")
    try:
        packed: bytes = block_packer().pack(tags)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode the tags: {exc}") from exc
    return packed


class ReservedFrame:
    """The frame of one DATA record ``[sequence, tags, [block]]`` with a block of ``nbytes``.

    ``tags`` are encoded now (later changes of the map do not travel); invalid tags raise
    :class:`~constellation.errors.EncodeError` here. :attr:`block` is a writable
    one-dimensional byte view; its content is undefined until written.
    """

    __slots__ = ("_buf", "_prefix", "_room", "_tail", "block", "nbytes")

    def __init__(self, sender: str, tags: dict[str, Any], nbytes: int) -> None:
        if type(nbytes) is not int or not 0 <= nbytes <= 0xFFFFFFFF:
            raise EncodeError(f"a reserved block needs 0 .. 2**32-1 bytes, not {nbytes!r}")
        self._prefix = _prefix(sender)
        self._tail = _tag_bytes(tags) + _ONE_BLOCK + _bin_header(nbytes)
        self._room = len(self._prefix) + _MAX_UINT_BYTES + len(self._tail)
        self._buf = np.empty(self._room + nbytes, dtype=np.uint8)
        self.nbytes = nbytes
        self.block = self._buf.data[self._room :]

    def finish(self, sequence: int) -> memoryview:
        """The complete frame with ``sequence`` (a view of the buffer; the block stays put)."""
        if type(sequence) is not int or not 0 <= sequence <= _UINT64_MAX:
            raise EncodeError(f"sequence must be a uint64, not {sequence!r}")
        head = self._prefix + msgpack.packb(sequence) + self._tail  # its shortest uint form
        start = self._room - len(head)
        view = self._buf.data
        view[start : self._room] = head
        return view[start:]
