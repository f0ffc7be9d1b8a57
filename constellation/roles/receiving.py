"""Data roles: receiving — per-sender run tracking on top of ``net.data_receiver``.

The role takes data from every transmitter of its group, or only from those listed in
``_data.receive_from`` (all of which must be discovered before ``launch`` completes). It connects
its PULL sockets when a run begins and reads them in :meth:`ReceivingRole.receive` (the receiver's
``do_run``, hook worker). A pure :class:`~constellation.core.run_tracker.RunTracker` checks
BOR → DATA → EOR per sender: a second BOR, or DATA/EOR before the BOR, is a protocol error of
that sender (logged, its message dropped, the others unaffected); records of a sender whose BOR
never came here are counted as orphans (another receiver took the BOR); gaps in the sequence
numbers make its EOR INCOMPLETE. On ``end_run`` a substitute EOR flagged ABORTED (INTERRUPTED
too when interrupted) is handed on for every sender without one. The sockets stay open from the
first run until :meth:`ReceivingRole.close`: a socket closed between runs leaves the transmitter's
PUSH socket a pipe to it until its I/O thread notices the closed connection, and a BOR sent
before that is lost in the dead pipe (seen under heavy load). At each ``begin_run`` sockets to
transmitters no longer wanted (``_data.receive_from`` changed) are closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import zmq

from constellation.core.config import DataConfig
from constellation.core.run_tracker import RunCondition, RunTracker, describe_condition
from constellation.core.states import State
from constellation.errors import DataProtocolError, DecodeError, TransitionError
from constellation.net.data_receiver import DataReceiver
from constellation.net.discovery import DiscoveredService, Discovery, DiscoveryEvent, ServiceId
from constellation.net.process_tuning import gc_relief
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, split_bor_eor
from constellation.protocol.cdtp2_uniform import UniformBatch, UniformMessage
from constellation.roles.base import DataRole, RoleContext

__all__ = ["LAUNCH_DISCOVERY_TIMEOUT", "LiveOutlet", "ReceiveCallbacks", "ReceivingRole"]

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})
#: How long ``launch`` waits for the transmitters of ``_data.receive_from`` to be found.
LAUNCH_DISCOVERY_TIMEOUT = 3.0
#: After ``stop``, the receiver gives up on missing EORs after this many ``eor_timeout``s even
#: if data still flows (a transmitter that never stops).
_MAX_EOR_WAIT_FACTOR = 6
_POLL_MS = 50
#: While data flows, the live service looks at its subscriptions at most this often (seconds).
_LIVE_SERVICE_S = 0.005


@dataclass(frozen=True)
class ReceiveCallbacks:
    """Where the received run goes (user code, called in the receiving thread, one at a time)."""

    bor: Callable[[str, dict[str, Any], dict[str, Any]], None]
    batch: Callable[[str, Sequence[DataRecord]], None]
    eor: Callable[[str, dict[str, Any], dict[str, Any]], None]
    #: If set, DATA messages of one record layout come here as a UniformBatch instead of
    #: going to ``batch`` (no per-record objects are built).
    uniform: Callable[[str, UniformBatch], None] | None = None
    #: Asked when each run begins: whether ``uniform`` is used in this run (default: yes).
    uniform_wanted: Callable[[], bool] | None = None


class LiveOutlet(Protocol):
    """Where accepted messages go on to live readers (``constellation.live.hooks.ReceiverLive``)."""

    def bind(self) -> None: ...
    def announce(self, discovery: Discovery) -> None: ...
    def start_run(self) -> None: ...
    def service(self) -> None: ...
    def accept(self, message: CDTP2Message | UniformMessage, frames: list[Any]) -> None: ...
    def substitute_eor(self, sender: str, metadata: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class ReceivingRole(DataRole):
    """The data role of a receiver: discovery of transmitters, sockets, tracking, run condition."""

    handles_data = True

    def __init__(
        self,
        ctx: RoleContext,
        callbacks: ReceiveCallbacks,
        make_receiver: Callable[[], DataReceiver] | None = None,
    ) -> None:
        self._ctx = ctx
        self._log = ctx.log.getChild("data")
        self._callbacks = callbacks
        self._make_receiver = make_receiver or (lambda: DataReceiver(zmq.Context.instance()))
        self._options = DataConfig()
        self._data_services: dict[str, DiscoveredService] = {}
        self._services_changed = threading.Condition()
        self.receiver: DataReceiver | None = None
        self._receiver_lock = threading.Lock()
        self._idle = threading.Event()  # set while the receive loop is not running
        self._idle.set()
        self._in_run = False  # between begin_run and end_run (holds gc_relief)
        self._run_id = ""
        self.tracker = RunTracker()
        #: Records and DATA-message bytes received in the current (or last) run.
        self.rx_records = 0
        self.rx_bytes = 0
        #: Frame bytes of the DATA message being handed to the batch callback.
        self.last_message_bytes = 0
        self._protocol_warning = RateLimitedWarning(self._log)
        # Per sender in the current run: EOR condition codes, BORs seen, records without BOR.
        self._conditions: dict[str, int] = {}
        self._bor_seen: set[str] = set()
        self._orphans: dict[str, int] = {}
        #: The live service, if any: every accepted BOR / DATA / EOR is handed on to it.
        self.live: LiveOutlet | None = None
        metrics = ctx.metrics
        # Counters only: listeners (Monitor, Controller) compute the rates.
        for name, unit, doc, poll in (
            ("RX_RECORDS", "", "Records received in this run", lambda: self.rx_records),
            ("RX_BYTES", "B", "Bytes of DATA messages received in this run", lambda: self.rx_bytes),
        ):
            metrics.register(name, unit, doc, poll, 1.0, _RUN_METRIC_STATES)
        metrics.register(
            "RUN_CONDITION", "", "Condition of the last run as received (sent when it ends)"
        )

    # --- discovery of transmitters --------------------------------------------------------------
    def announce(self, discovery: Discovery) -> None:
        discovery.add_listener([ServiceId.DATA], self.on_data_service)
        if self.live is not None:
            # Bound before the control service (announced next) can be asked for the endpoint.
            self.live.bind()
            self.live.announce(discovery)

    def configure(self, data: DataConfig) -> None:
        self._options = data

    def _wanted(self, name: str) -> bool:
        wanted = self._options.receive_from
        return wanted is None or name.lower() in {w.lower() for w in wanted}

    def on_data_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        """A transmitter's data service came or went (discovery thread)."""
        key = service.name.lower()
        with self._services_changed:
            if event is DiscoveryEvent.ADDED:
                self._data_services[key] = service
            elif self._data_services.get(key) == service:
                del self._data_services[key]
            self._services_changed.notify_all()
        # A departure does not close the socket: what the sender queued is still read, and
        # ZeroMQ reconnects if it comes back at the same place.
        with self._receiver_lock:
            receiver = self.receiver
            if receiver is not None and event is DiscoveryEvent.ADDED and self._wanted(key):
                receiver.connect(service)

    def launch(self) -> None:
        wanted = self._options.receive_from
        if not wanted:
            return
        deadline = time.monotonic() + LAUNCH_DISCOVERY_TIMEOUT
        with self._services_changed:
            while True:
                missing = [w for w in wanted if w.lower() not in self._data_services]
                if not missing:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransitionError(
                        f"transmitters of _data.receive_from not found: {', '.join(missing)}"
                    )
                self._services_changed.wait(remaining)

    # --- run ------------------------------------------------------------------------------------
    def begin_run(self, run_id: str, bor_tags: dict[str, Any], config: dict[str, Any]) -> None:
        self._run_id = run_id
        self.tracker = RunTracker()
        self.rx_records = self.rx_bytes = 0
        self._conditions, self._bor_seen, self._orphans = {}, set(), {}
        if self.live is not None:
            self.live.start_run()  # forget the previous run's BORs
        # The sockets of the previous run are kept (see the module docstring).
        receiver = self.receiver
        if receiver is None:
            receiver = self._make_receiver()
        else:
            for name in receiver.connected():
                if not self._wanted(name):
                    receiver.disconnect(name)
        wanted = self._callbacks.uniform_wanted
        receiver.uniform = self._callbacks.uniform is not None and (wanted is None or wanted())
        # Publish the receiver first, then connect what is known: a transmitter discovered in
        # between is either in the snapshot or connected by on_data_service (connect is
        # idempotent per endpoint), never missed.
        with self._receiver_lock:
            self.receiver = receiver
        with self._services_changed:
            services = [s for s in self._data_services.values() if self._wanted(s.name)]
        for service in services:
            receiver.connect(service)
        if not self._in_run:
            self._in_run = True
            gc_relief.acquire()

    def receive(self, stop_requested: Callable[[], bool]) -> None:
        """The receive loop: until stopped and every EOR is in (or timed out), or ERROR."""
        receiver = self.receiver
        if receiver is None:
            return
        self._idle.clear()
        try:
            self._receive(receiver, stop_requested)
        finally:
            self._idle.set()

    def _receive(self, receiver: DataReceiver, stop_requested: Callable[[], bool]) -> None:
        eor_timeout = self._options.eor_timeout
        dispatch = self._dispatch
        state, closing = self._ctx.state, self._ctx.closing
        now = last_activity = time.monotonic()
        next_service = now
        stop_seen: float | None = None
        live = self.live
        while state() is not State.ERROR and not closing():
            received = False
            if live is not None and now >= next_service:
                next_service = now + _LIVE_SERVICE_S
                live.service()  # new subscribers get the BORs
            for message, size in receiver.poll(_POLL_MS):
                dispatch(message, size)
                received = True
                if closing():
                    break
            now = time.monotonic()
            if received:
                last_activity = now
            if stop_requested():
                if stop_seen is None:
                    stop_seen = now
                if not self.tracker.pending_eor():
                    break
                if now - max(stop_seen, last_activity) > eor_timeout:
                    break
                if now - stop_seen > _MAX_EOR_WAIT_FACTOR * eor_timeout:
                    break

    def _dispatch(self, message: CDTP2Message | UniformMessage, size: int) -> None:
        sender = message.sender
        try:
            if isinstance(message, UniformMessage):
                batch = message.batch
                self.tracker.on_data_range(sender, batch.first_seq, batch.count, time.monotonic())
                self._to_live(message)
                self.rx_records += batch.count
                self.rx_bytes += size
                self.last_message_bytes = size
                on_uniform = self._callbacks.uniform
                if on_uniform is not None:
                    on_uniform(sender, batch)
                else:  # a receiver made uniform by someone else: build the records
                    self._callbacks.batch(sender, batch.records())
            elif message.msg_type is CDTPType.DATA:
                records = message.records
                self.tracker.on_data_fast(sender, records, time.monotonic())
                self._to_live(message)
                self.rx_records += len(records)
                self.rx_bytes += size
                self.last_message_bytes = size
                self._callbacks.batch(sender, records)
            elif message.msg_type is CDTPType.BOR:
                user_tags, config = split_bor_eor(message)
                self.tracker.on_bor(sender, user_tags, config, time.monotonic())
                self._to_live(message)
                self._bor_seen.add(sender.lower())
                self._log.info("BOR from %s", sender)
                self._callbacks.bor(sender, user_tags, config)
            else:
                user_tags, metadata = split_bor_eor(message)
                self._sync_flags()
                metadata = self._with_own_flags(
                    self.tracker.on_eor(sender, user_tags, metadata, time.monotonic())
                )
                self._to_live(message)
                self._log.info(
                    "EOR from %s: %s records, condition %s",
                    sender,
                    metadata.get("data_records"),
                    metadata.get("condition"),
                )
                self._conditions[sender] = int(metadata.get("condition_code", 0) or 0)
                self._callbacks.eor(sender, user_tags, metadata)
        except (DataProtocolError, DecodeError) as exc:
            if message.msg_type is CDTPType.DATA and sender.lower() not in self._bor_seen:
                self._orphan_records(sender, len(message.records))
            else:
                self._protocol_warning("message from %s dropped: %s", sender, exc)

    def _to_live(self, message: CDTP2Message | UniformMessage) -> None:
        """Hand an accepted message, with its received frames, on to the live service."""
        live, receiver = self.live, self.receiver
        if live is not None:
            live.accept(message, receiver.last_frames if receiver is not None else [])

    def _orphan_records(self, sender: str, count: int) -> None:
        """Records of a sender whose BOR never came: another receiver probably took it."""
        first = sender not in self._orphans
        self._orphans[sender] = self._orphans.get(sender, 0) + count
        if first:
            self._log.warning(
                "records of %s arrive without its BOR: another receiver takes part of its data "
                "(each message goes to one receiver); give each transmitter one receiver with "
                "_data.receive_from",
                sender,
            )

    def _sync_flags(self) -> None:
        """Pass a DEGRADED mark of the satellite's run on to the tracker."""
        if self._ctx.run_condition() & RunCondition.DEGRADED and not self.tracker.degraded:
            self.tracker.mark_degraded()

    def _with_own_flags(self, metadata: dict[str, Any], extra: int = 0) -> dict[str, Any]:
        """OR the run's TAINTED mark (and ``extra``) into EOR run metadata."""
        added = extra | (self._ctx.run_condition() & RunCondition.TAINTED)
        code = metadata.get("condition_code", 0)
        if added and isinstance(code, int) and code | added != code:
            metadata["condition_code"] = code | added
            metadata["condition"] = describe_condition(code | added)
        return metadata

    def end_run(self, interrupted: bool) -> None:
        """Substitute EORs for senders that sent none, publish the counts (sockets stay open)."""
        self._sync_flags()
        extra = RunCondition.INTERRUPTED if interrupted else 0
        for sender in self.tracker.pending_eor():
            now = datetime.now(timezone.utc)
            metadata = self.tracker.substitute_eor(sender, self._run_id, now)
            metadata = self._with_own_flags(metadata, extra)
            self._log.warning(
                "no EOR from %s: substitute EOR with condition %s", sender, metadata["condition"]
            )
            self._conditions[sender] = int(metadata.get("condition_code", 0) or 0)
            if self.live is not None:
                self.live.substitute_eor(sender, metadata)
            self._callbacks.eor(sender, {}, metadata)
        self._leave_run()
        metrics = self._ctx.metrics
        metrics.publish_now("RX_RECORDS", self.rx_records)
        metrics.publish_now("RX_BYTES", self.rx_bytes)
        metrics.publish_now("RUN_CONDITION", self.run_condition_text())

    def run_condition_text(self) -> str:
        """The run's condition as received: the flags of all its EORs, ``NO_BOR`` when records
        came without their BOR, ``NO_DATA`` when no sender began a run here."""
        if not self._conditions and not self._orphans:
            return "NO_DATA"
        code = 0
        for value in self._conditions.values():
            code |= value
        text = describe_condition(code)
        if self._orphans:
            text = "NO_BOR" if text == "GOOD" else f"{text}|NO_BOR"
        return text

    def _leave_run(self) -> None:
        """End the run's hold on gc_relief (once, whichever way the run ends)."""
        if self._in_run:
            self._in_run = False
            gc_relief.release()

    def _close_receiver(self) -> None:
        with self._receiver_lock:
            receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.close()
        self._leave_run()

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        # The receive loop notices ``closing`` within one poll; the sockets belong to its thread.
        if not self._idle.wait(2.0):
            self._ctx.log.warning("receive loop still running at close; data sockets left open")
            return
        self._close_receiver()
