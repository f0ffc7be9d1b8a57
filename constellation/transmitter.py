"""Assembly layer: TransmitterSatellite — a satellite with the sending data role.

User code only makes records in ``do_run`` with :meth:`TransmitterSatellite.send_record`; its
:class:`~constellation.roles.sending.SendingRole` sends the BOR (``bor_tags`` + the effective
configuration) after ``do_starting`` and before ``do_run``, drains the send queue when ``do_run``
returns, and sends the EOR (``eor_tags`` + run metadata) after ``do_stopping``. A receiver that
does not keep up blocks ``send_record`` up to ``_data.data_timeout`` and then fails the run to
ERROR; records are never dropped silently. An interrupt makes a blocked ``send_record`` raise
``SendingStoppedError`` at once (ending ``do_run``; see ``roles.sending``).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from constellation.net.data_sender import DataSender
from constellation.roles.sending import INTERRUPT_DRAIN_S, ReservedRecord, SendingRole
from constellation.satellite import Satellite

__all__ = ["INTERRUPT_DRAIN_S", "ReservedRecord", "TransmitterSatellite"]

#: Shared tag map of records sent without tags (never modified).
_NO_TAGS: dict[str, Any] = {}
_ndarray = np.ndarray


def _dtype_tag(dtype: np.dtype[Any]) -> str:
    """The ``dtype`` tag of an array: its name, with the byte order where it matters."""
    return dtype.name if dtype.byteorder in ("=", "|") else dtype.str


def _prepare_array(
    array: np.ndarray[Any, Any], tags: dict[str, Any] | None
) -> tuple[dict[str, Any], tuple[Any, ...], int]:
    """(tags, blocks, block bytes) of a record of one numpy array: the common numpy call."""
    dtype = array.dtype
    if dtype.hasobject:
        raise TypeError("numpy arrays of Python objects cannot be sent as blocks")
    if not tags:
        return {"dtype": _dtype_tag(dtype)}, (array,), array.nbytes
    record_tags = dict(tags)
    if "dtype" not in record_tags:
        record_tags["dtype"] = _dtype_tag(dtype)
    return record_tags, (array,), array.nbytes


def _prepare(
    blocks: Any, tags: dict[str, Any] | None
) -> tuple[dict[str, Any], tuple[Any, ...], int]:
    """(tags, blocks, block bytes) of a record; the general path of ``send_record``."""
    if isinstance(blocks, (bytes, bytearray, memoryview, _ndarray)):
        blocks = (blocks,)
    elif isinstance(blocks, str):
        raise TypeError("a block must be bytes-like or a numpy array, not str")
    else:
        blocks = tuple(blocks)  # a snapshot: the caller may reuse its list
    record_tags = dict(tags) if tags else {}
    nbytes = 0
    for block in blocks:
        if isinstance(block, _ndarray):
            if block.dtype.hasobject:
                raise TypeError("numpy arrays of Python objects cannot be sent as blocks")
            if "dtype" not in record_tags:
                record_tags["dtype"] = _dtype_tag(block.dtype)
            nbytes += block.nbytes
        elif isinstance(block, (bytes, bytearray)):
            nbytes += len(block)
        elif isinstance(block, memoryview):
            nbytes += block.nbytes
        else:
            raise TypeError(
                f"a block must be bytes-like or a numpy array, not {type(block).__name__}"
            )
    return record_tags or _NO_TAGS, blocks, nbytes


class TransmitterSatellite(Satellite):
    """A satellite that streams records to receivers over CDTP2."""

    def __init__(self, name: str, group: str, *, data_port: int = 0, **kwargs: Any) -> None:
        super().__init__(name, group, data_role=lambda ctx: SendingRole(ctx, data_port), **kwargs)
        self._role = cast(SendingRole, self.data_role)

    @property
    def data(self) -> DataSender | None:
        """The data sender (socket and queue) once started."""
        return self._role.data

    # --- user API -------------------------------------------------------------------------------
    def send_record(self, blocks: Any, tags: dict[str, Any] | None = None) -> int:
        """Queue one record and return its sequence number (1, 2, ... in each run).

        ``blocks`` is one block or a sequence of blocks: bytes, bytearray, memoryview or numpy
        arrays. Blocks are sent as they are, without a copy: do not modify them afterwards. The
        dtype of a numpy array is recorded in the ``dtype`` tag (unless ``tags`` sets it).
        Blocks while the send queue is full, up to ``_data.data_timeout``, then raises
        :class:`~constellation.errors.DataTimeoutError` (the run fails to ERROR); an interrupt
        makes a waiting call raise :class:`~constellation.errors.SendingStoppedError`, which
        ends ``do_run`` without a failure. Returns 0,
        sending nothing, when ``_data.disable_transmission`` is set.
        """
        sender = self._role.sender
        if sender is None:
            error = self._role.not_sending_error()
            if error is None:
                return 0
            raise error
        kind = type(blocks)
        if kind is bytes and not tags:
            return sender.add(_NO_TAGS, (blocks,), len(blocks))
        if kind is tuple and not tags and len(blocks) == 1 and type(blocks[0]) is bytes:
            return sender.add(_NO_TAGS, blocks, len(blocks[0]))
        if kind is _ndarray:
            return sender.add(*_prepare_array(blocks, tags))
        return sender.add(*_prepare(blocks, tags))

    def reserve_record(self, nbytes: int, tags: dict[str, Any] | None = None) -> ReservedRecord:
        """A record of one block of ``nbytes`` that is written in place, then sent.

        The block lives in the message that will be sent, so it travels without any copy
        (worth it for blocks from about 256 KiB; each such record is a DATA message of its
        own). ``tags`` are encoded now. Write ``rec.buffer`` (a writable byte view; e.g.
        ``device.readinto(rec.buffer)`` or ``np.frombuffer(rec.buffer, np.uint16)[:] = ...``),
        then ``rec.send()``, which returns the sequence number and blocks or raises as
        :meth:`send_record`; or ``with self.reserve_record(n) as buffer: ...`` sends on exit.
        """
        return self._role.reserve(nbytes, tags)

    def can_send_record(self) -> bool:
        """True if :meth:`send_record` would not block now (for code that prefers to drop)."""
        sender = self._role.sender
        return sender is not None and sender.can_send()
