"""Assembly layer: TransmitterSatellite — BOR / DATA / EOR sending on top of ``net.data_sender``.

User code only makes records in ``do_run`` with :meth:`TransmitterSatellite.send_record`; the
framework sends the BOR (``bor_tags`` + the effective configuration) after ``do_starting`` and
before ``do_run``, drains the send queue when ``do_run`` returns, and sends the EOR
(``eor_tags`` + run metadata) after ``do_stopping``. A receiver that does not keep up blocks
``send_record`` up to ``_data.data_timeout`` and then fails the run to ERROR; records are never
dropped silently.

An interrupt (a peer failed) must reach SAFE even when the receiver is the peer that died: a
blocked ``send_record`` raises ``SendingStoppedError`` at once (ending ``do_run``), the queue
is drained for at most :data:`INTERRUPT_DRAIN_S`, what could not be sent is counted in a
warning, and an EOR that no receiver takes is logged instead of failing the transition.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import numpy as np
import zmq

from constellation.core.config import Configuration
from constellation.core.run_tracker import RunCondition, make_run_metadata
from constellation.core.states import State
from constellation.errors import DataTimeoutError
from constellation.net.data_sender import DataSender
from constellation.net.discovery import Discovery, ServiceId
from constellation.protocol.cdtp2 import make_bor, make_eor
from constellation.satellite import Satellite

__all__ = ["INTERRUPT_DRAIN_S", "TransmitterSatellite"]

#: Longest time an interrupt spends sending queued records (and, separately, the EOR).
INTERRUPT_DRAIN_S = 2.0

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})
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

    handles_data = True

    def __init__(self, name: str, group: str, *, data_port: int = 0, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self._data_port = data_port
        self.data: DataSender | None = None
        #: Tags of the begin-of-run message; set them in ``do_starting``.
        self.bor_tags: dict[str, Any] = {}
        #: Tags of the end-of-run message; set them in ``do_stopping``.
        self.eor_tags: dict[str, Any] = {}
        self._sender: DataSender | None = None  # set while records may be sent
        self._bor_sent = False
        self._eor_sent = False
        self._time_start = datetime.now(timezone.utc)
        self._eor_lock = threading.Lock()
        self._register_metrics()

    def _register_metrics(self) -> None:
        # Counters only: listeners (Monitor, Controller) compute the rates.
        for name, unit, doc, poll in (
            ("TX_RECORDS", "", "Records sent in this run", self._tx_records),
            ("TX_BYTES", "B", "Bytes of DATA messages sent in this run", self._tx_bytes),
        ):
            self.metrics.register(name, unit, doc, poll, 1.0, _RUN_METRIC_STATES)

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
        sender = self._sender
        if sender is None:
            return self._not_sending()
        kind = type(blocks)
        if kind is bytes and not tags:
            return sender.add(_NO_TAGS, (blocks,), len(blocks))
        if kind is tuple and not tags and len(blocks) == 1 and type(blocks[0]) is bytes:
            return sender.add(_NO_TAGS, blocks, len(blocks[0]))
        if kind is _ndarray:
            return sender.add(*_prepare_array(blocks, tags))
        return sender.add(*_prepare(blocks, tags))

    def can_send_record(self) -> bool:
        """True if :meth:`send_record` would not block now (for code that prefers to drop)."""
        sender = self._sender
        return sender is not None and sender.can_send()

    def _not_sending(self) -> int:
        if self.framework.data.disable_transmission and self.state is State.RUN:
            return 0
        data = self.data
        if data is not None and data.error is not None:
            raise DataTimeoutError(str(data.error))
        raise DataTimeoutError("records can only be sent in do_run")

    # --- framework --------------------------------------------------------------------------
    def _announce_extra(self, discovery: Discovery) -> None:
        self.data = DataSender(
            zmq.Context.instance(),
            self.scope,
            self.canonical_name,
            self._data_port,
            on_error=self._on_send_error,
        )
        discovery.announce(ServiceId.DATA, self.data.port)

    def _on_send_error(self, exc: BaseException) -> None:
        self._sender = None
        self.fail(f"{type(exc).__name__} in data sending: {exc}", exc)

    def _framework_initialize(self, config: Configuration) -> None:
        options = self.framework.data
        if self.data is not None:
            self.data.configure(options.payload_threshold, options.queue_size, options.data_timeout)
            if self.discovery is not None:
                if options.disable_transmission:
                    self.discovery.withdraw(ServiceId.DATA)
                else:
                    self.discovery.announce(ServiceId.DATA, self.data.port)

    def _framework_start(self, run_id: str) -> None:
        assert self.data is not None
        self._bor_sent = self._eor_sent = False
        self._sender = None
        self._time_start = datetime.now(timezone.utc)
        if self.framework.data.disable_transmission:
            return
        bor = make_bor(self.canonical_name, dict(self.bor_tags), self.config.effective())
        self.data.send_message(bor, self.framework.data.bor_timeout)
        self._bor_sent = True
        self.data.begin_run()
        self._sender = self.data

    def _framework_interrupting(self) -> None:
        if self.data is not None and self._sender is not None:
            self.data.interrupt()  # a send_record blocked on a dead receiver returns now

    def _framework_stop(self) -> None:
        self._sender = None
        if self.data is None or not self._bor_sent:
            return
        if self.state is not State.interrupting:
            self.data.end_run()  # everything queued goes out before the EOR
            return
        drain = min(self.framework.data.data_timeout, INTERRUPT_DRAIN_S)
        unsent = self.data.end_run_within(drain)
        if unsent:
            self.log.getChild("data").warning(
                "interrupted: %d queued records not sent (no receiver took them within %g s)",
                unsent,
                drain,
            )

    def _framework_stopped(self, condition: RunCondition) -> None:
        self.metrics.publish_now("TX_RECORDS", self._tx_records())
        self.metrics.publish_now("TX_BYTES", self._tx_bytes())
        if not self._bor_sent or self._eor_sent:
            return
        if self.state is not State.interrupting:
            self._send_eor(condition, self.framework.data.eor_timeout)
            return
        try:
            self._send_eor(condition, min(self.framework.data.eor_timeout, INTERRUPT_DRAIN_S))
        except DataTimeoutError as exc:
            self.log.getChild("data").warning("interrupted: end-of-run not delivered: %s", exc)

    def _send_eor(self, condition: RunCondition, timeout: float) -> None:
        """Send the EOR once (the worker thread and the abort thread may both try)."""
        with self._eor_lock:
            if self._eor_sent:
                return
            self._eor_sent = True
            self._send_eor_message(condition, timeout)

    def _send_eor_message(self, condition: RunCondition, timeout: float) -> None:
        assert self.data is not None
        metadata = make_run_metadata(
            self.run_id,
            self._time_start,
            datetime.now(timezone.utc),
            condition,
            self.data.records_sent,
            self.version,
            license=self.framework.data.license,
        )
        eor = make_eor(self.canonical_name, dict(self.eor_tags), metadata)
        self.data.send_message(eor, timeout)
        self.log.getChild("data").info(
            "run %s: %d records sent, condition %s",
            self.run_id,
            metadata["data_records"],
            metadata["condition"],
        )

    def _framework_failure(self, previous: State) -> None:
        self._sender = None
        if self._bor_sent and not self._eor_sent:
            threading.Thread(
                target=self._abort_run, name=f"{self.canonical_name}-abort", daemon=True
            ).start()

    def _abort_run(self) -> None:
        """After a failure: drop the queue and try to send an ABORTED|TAINTED EOR."""
        if self._eor_sent or self.data is None:
            return
        self.data.abort()
        if self.data.running:
            self.log.warning("no end-of-run sent: the data sender thread did not stop")
            return
        condition = self.run_condition | RunCondition.ABORTED | RunCondition.TAINTED
        try:
            self._send_eor(condition, 1.0)
        except Exception as exc:
            self.log.warning("could not send the end-of-run after the failure: %s", exc)

    def _close_extra(self) -> None:
        self._sender = None
        if self.data is not None:
            self.data.close()

    def _tx_records(self) -> int:
        return self.data.records_sent if self.data else 0

    def _tx_bytes(self) -> int:
        return self.data.bytes_sent if self.data else 0
