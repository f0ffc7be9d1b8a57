"""Data roles: sending — BOR / DATA / EOR of one transmitter on top of ``net.data_sender``.

The BOR (BOR tags + the effective configuration) goes out in ``begin_run``, the queue is drained
in ``end_run`` and the EOR (EOR tags + run metadata) goes out in ``finish_run``. An interrupt
must reach SAFE even when the receiver is the peer that died: ``unblock`` makes a blocked send
raise :class:`~constellation.errors.SendingStoppedError`, the queue is drained for at most
:data:`INTERRUPT_DRAIN_S`, what could not be sent is counted in a warning, and an EOR that no
receiver takes is logged instead of failing the transition. After a failure ``abort`` drops the
queue and tries, in a thread of its own, to send an EOR flagged ABORTED|TAINTED.

:class:`ReservedRecord` is a record whose one block the user writes in place, into the frame
that will be sent (``reserve_record``): large blocks then travel without any copy.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import zmq

from constellation.core.config import DataConfig
from constellation.core.run_tracker import RunCondition, make_run_metadata
from constellation.core.states import State
from constellation.errors import DataTimeoutError, UsageError
from constellation.net.data_sender import DataSender
from constellation.net.discovery import Discovery, ServiceId
from constellation.protocol.cdtp2 import make_bor, make_eor
from constellation.protocol.cdtp2_reserved import ReservedFrame
from constellation.roles.base import DataRole, RoleContext

__all__ = ["INTERRUPT_DRAIN_S", "ReservedRecord", "SendingRole"]

#: Longest time an interrupt spends sending queued records (and, separately, the EOR).
INTERRUPT_DRAIN_S = 2.0

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})


class ReservedRecord:
    """One record whose single block is written in place; :meth:`send` queues it.

    :attr:`buffer` is a writable byte view of ``nbytes`` (undefined content until written);
    wrap it for typed access, e.g. ``np.frombuffer(rec.buffer, np.uint16)``. As a context
    manager it yields :attr:`buffer` and sends the record when the block exits without an
    exception (an exception discards it). Do not write the buffer after :meth:`send`.
    """

    __slots__ = ("_frame", "_role", "_sent", "buffer")

    def __init__(self, role: SendingRole, frame: ReservedFrame) -> None:
        self._role = role
        self._frame = frame
        self._sent = False
        self.buffer = frame.block

    @property
    def nbytes(self) -> int:
        return self._frame.nbytes

    def send(self) -> int:
        """Queue the record (blocking like ``send_record``); return its sequence number.

        Returns 0, sending nothing, when ``_data.disable_transmission`` is set.
        """
        if self._sent:
            raise UsageError("this reserved record was sent already")
        sender = self._role.sender
        if sender is None:
            error = self._role.not_sending_error()
            if error is None:
                self._sent = True
                return 0
            raise error
        sequence = sender.add_frame(self._frame)
        self._sent = True
        return sequence

    def __enter__(self) -> memoryview:
        return self.buffer

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.send()


class SendingRole(DataRole):
    """The data role of a transmitter: one :class:`DataSender` and the run messages."""

    handles_data = True

    def __init__(self, ctx: RoleContext, data_port: int = 0) -> None:
        self._ctx = ctx
        self._data_port = data_port
        self._log = ctx.log.getChild("data")
        #: The sender (socket + queue) once announced.
        self.data: DataSender | None = None
        #: The sender while records may be added (``begin_run`` .. ``end_run``), else None.
        self.sender: DataSender | None = None
        self._options = DataConfig()
        self._discovery: Discovery | None = None
        self._run_id = ""
        self._bor_sent = False
        self._eor_sent = False
        self._interrupted = False
        self._eor_tags: dict[str, Any] = {}
        self._time_start = datetime.now(timezone.utc)
        self._eor_lock = threading.Lock()
        # Counters only: listeners (Monitor, Controller) compute the rates.
        for name, unit, doc, poll in (
            ("TX_RECORDS", "", "Records sent in this run", self.records_sent),
            ("TX_BYTES", "B", "Bytes of DATA messages sent in this run", self.bytes_sent),
        ):
            ctx.metrics.register(name, unit, doc, poll, 1.0, _RUN_METRIC_STATES)

    def records_sent(self) -> int:
        return self.data.records_sent if self.data else 0

    def bytes_sent(self) -> int:
        return self.data.bytes_sent if self.data else 0

    def not_sending_error(self) -> DataTimeoutError | None:
        """Why no record can be sent now; None when records are dropped on purpose
        (``_data.disable_transmission`` in RUN)."""
        if self._options.disable_transmission and self._ctx.state() is State.RUN:
            return None
        if self.data is not None and self.data.error is not None:
            return DataTimeoutError(str(self.data.error))
        return DataTimeoutError("records can only be sent in do_run")

    def reserve(self, nbytes: int, tags: dict[str, Any] | None) -> ReservedRecord:
        """A :class:`ReservedRecord` of one block of ``nbytes`` with ``tags`` (copied now)."""
        return ReservedRecord(self, ReservedFrame(self._ctx.canonical_name, tags or {}, nbytes))

    # --- the role interface ---------------------------------------------------------------------
    def announce(self, discovery: Discovery) -> None:
        self._discovery = discovery
        self.data = DataSender(
            zmq.Context.instance(),
            self._ctx.scope,
            self._ctx.canonical_name,
            self._data_port,
            on_error=self._on_send_error,
        )
        discovery.announce(ServiceId.DATA, self.data.port)

    def _on_send_error(self, exc: BaseException) -> None:
        self.sender = None
        self._ctx.fail(f"{type(exc).__name__} in data sending: {exc}", exc)

    def configure(self, data: DataConfig) -> None:
        self._options = data
        if self.data is None:
            return
        self.data.configure(data.payload_threshold, data.queue_size, data.data_timeout)
        if self._discovery is not None:
            if data.disable_transmission:
                self._discovery.withdraw(ServiceId.DATA)
            else:
                self._discovery.announce(ServiceId.DATA, self.data.port)

    def begin_run(self, run_id: str, bor_tags: dict[str, Any], config: dict[str, Any]) -> None:
        assert self.data is not None
        self._run_id = run_id
        self._bor_sent = self._eor_sent = self._interrupted = False
        self.sender = None
        self._time_start = datetime.now(timezone.utc)
        if self._options.disable_transmission:
            return
        bor = make_bor(self._ctx.canonical_name, dict(bor_tags), config)
        self.data.send_message(bor, self._options.bor_timeout)
        self._bor_sent = True
        self.data.begin_run()
        self.sender = self.data

    def unblock(self) -> None:
        if self.data is not None and self.sender is not None:
            self.data.interrupt()  # a send_record blocked on a dead receiver returns now

    def end_run(self, interrupted: bool) -> None:
        self.sender = None
        self._interrupted = interrupted
        if self.data is None or not self._bor_sent:
            return
        if not interrupted:
            self.data.end_run()  # everything queued goes out before the EOR
            return
        drain = min(self._options.data_timeout, INTERRUPT_DRAIN_S)
        unsent = self.data.end_run_within(drain)
        if unsent:
            self._log.warning(
                "interrupted: %d queued records not sent (no receiver took them within %g s)",
                unsent,
                drain,
            )

    def finish_run(self, condition: RunCondition, eor_tags: dict[str, Any]) -> None:
        self._ctx.metrics.publish_now("TX_RECORDS", self.records_sent())
        self._ctx.metrics.publish_now("TX_BYTES", self.bytes_sent())
        self._eor_tags = dict(eor_tags)
        if not self._bor_sent or self._eor_sent:
            return
        if not self._interrupted:
            self._send_eor(condition, self._options.eor_timeout)
            return
        try:
            self._send_eor(condition, min(self._options.eor_timeout, INTERRUPT_DRAIN_S))
        except DataTimeoutError as exc:
            self._log.warning("interrupted: end-of-run not delivered: %s", exc)

    def abort(self, previous_state: State) -> None:
        self.sender = None
        if self._bor_sent and not self._eor_sent:
            threading.Thread(
                target=self._abort_run, name=f"{self._ctx.canonical_name}-abort", daemon=True
            ).start()

    def close(self) -> None:
        self.sender = None
        if self.data is not None:
            self.data.close()

    # --- EOR ------------------------------------------------------------------------------------
    def _send_eor(self, condition: RunCondition, timeout: float) -> None:
        """Send the EOR once (the worker thread and the abort thread may both try)."""
        with self._eor_lock:
            if self._eor_sent:
                return
            self._eor_sent = True
            assert self.data is not None
            metadata = make_run_metadata(
                self._run_id,
                self._time_start,
                datetime.now(timezone.utc),
                condition,
                self.data.records_sent,
                self._ctx.version,
                license=self._options.license,
            )
            eor = make_eor(self._ctx.canonical_name, self._eor_tags, metadata)
            self.data.send_message(eor, timeout)
        self._log.info(
            "run %s: %d records sent, condition %s",
            self._run_id,
            metadata["data_records"],
            metadata["condition"],
        )

    def _abort_run(self) -> None:
        """After a failure: drop the queue and try to send an ABORTED|TAINTED EOR."""
        if self._eor_sent or self.data is None:
            return
        self.data.abort()
        if self.data.running:
            self._ctx.log.warning("no end-of-run sent: the data sender thread did not stop")
            return
        condition = self._ctx.run_condition() | RunCondition.ABORTED | RunCondition.TAINTED
        try:
            self._send_eor(condition, 1.0)
        except Exception as exc:
            self._ctx.log.warning("could not send the end-of-run after the failure: %s", exc)
