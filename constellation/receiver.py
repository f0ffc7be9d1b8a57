"""Assembly layer: ReceiverSatellite — per-sender run tracking on top of ``net.data_receiver``.

The receiver takes data from every transmitter of its group, or only from those listed in
``_data.receive_from`` (all of which must be discovered before ``launch`` completes). It connects
its PULL sockets when a run starts and reads them in ``do_run`` (the worker thread). A pure
:class:`~constellation.core.run_tracker.RunTracker` checks BOR → DATA → EOR per sender: a second
BOR, or DATA/EOR before the BOR, is a protocol error of that sender (logged, its message dropped,
the others unaffected); gaps in the sequence numbers make its EOR INCOMPLETE. User code gets
``receive_bor``, ``receive_data_batch`` (or ``receive_data``) and ``receive_eor``. On stop the
receiver drains its sockets, waits up to ``_data.eor_timeout`` for missing EORs and then writes a
substitute EOR flagged ABORTED (INTERRUPTED too when interrupted) for every sender without one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import zmq

from constellation.core.run_tracker import RunCondition, RunTracker, describe_condition
from constellation.core.states import State
from constellation.errors import DataProtocolError, DecodeError, TransitionError
from constellation.live.hooks import ReceiverLive
from constellation.net.data_receiver import DataReceiver
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId
from constellation.net.process_tuning import gc_relief
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, split_bor_eor
from constellation.satellite import Satellite

__all__ = ["LAUNCH_DISCOVERY_TIMEOUT", "ReceiverSatellite"]

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})
#: How long ``launching`` waits for the transmitters of ``_data.receive_from`` to be found.
LAUNCH_DISCOVERY_TIMEOUT = 3.0
#: After ``stop``, the receiver gives up on missing EORs after this many ``eor_timeout``s even
#: if data still flows (a transmitter that never stops).
_MAX_EOR_WAIT_FACTOR = 6
_POLL_MS = 50


class ReceiverSatellite(Satellite):
    """A satellite that receives the runs of transmitters.

    Override the ``receive_*`` callbacks; they run in the worker thread, one at a time. The
    framework's receive loop is :meth:`do_run`; a subclass that overrides it must call it.
    """

    handles_data = True
    #: Live service: False publishes each message once the receiver accepted it; a writer
    #: that publishes after storing (H5DataWriter) sets True and calls ``self.live.stored``.
    live_deferred = False

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self._data_services: dict[str, DiscoveredService] = {}
        self._services_changed = threading.Condition()
        self._receiver: DataReceiver | None = None
        self._receiver_lock = threading.Lock()
        self.tracker = RunTracker()
        #: Records and DATA-message bytes received in the current (or last) run.
        self.rx_records = 0
        self.rx_bytes = 0
        #: Frame bytes of the DATA message being handed to ``receive_data_batch``.
        self.last_message_bytes = 0
        self._protocol_warning = RateLimitedWarning(self.log.getChild("data"))
        # Per sender in the current run: EOR condition codes, BORs seen, records without BOR.
        self._conditions: dict[str, int] = {}
        self._bor_seen: set[str] = set()
        self._orphans: dict[str, int] = {}
        self._register_metrics()
        self.live = ReceiverLive(self, self.live_deferred)  # live: command, metrics

    def _register_metrics(self) -> None:
        # Counters only: listeners (Monitor, Controller) compute the rates.
        for name, unit, doc, poll in (
            ("RX_RECORDS", "", "Records received in this run", lambda: self.rx_records),
            ("RX_BYTES", "B", "Bytes of DATA messages received in this run", lambda: self.rx_bytes),
        ):
            self.metrics.register(name, unit, doc, poll, 1.0, _RUN_METRIC_STATES)
        self.metrics.register(
            "RUN_CONDITION", "", "Condition of the last run as received (sent when it ends)"
        )

    # --- user callbacks (worker thread) -------------------------------------------------------
    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        """``sender`` began its run: its BOR tags and its full configuration."""

    def receive_data(self, sender: str, record: DataRecord) -> None:
        """One record of ``sender`` (``record.sequence``, ``.tags``, ``.blocks``)."""

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        """The records of one DATA message of ``sender`` (default: ``receive_data`` each)."""
        for record in records:
            self.receive_data(sender, record)

    def receive_eor(
        self, sender: str, user_tags: dict[str, Any], run_metadata: dict[str, Any]
    ) -> None:
        """``sender`` ended its run; ``run_metadata`` carries the condition with our flags.

        For a sender that vanished without EOR this is called with a substitute (the key
        ``substitute`` is True, the condition includes ABORTED).
        """

    # --- discovery of transmitters --------------------------------------------------------------
    def _announce(self) -> None:
        self.live.bind()  # live: the sockets exist before the command can be asked
        super()._announce()
        assert self.discovery is not None
        self.discovery.add_listener([ServiceId.DATA], self._on_data_service)
        self.live.announce(self.discovery)  # live: announce over mDNS

    def _wanted(self, name: str) -> bool:
        wanted = self.framework.data.receive_from
        return wanted is None or name.lower() in {w.lower() for w in wanted}

    def _on_data_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
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
            receiver = self._receiver
            if receiver is not None and event is DiscoveryEvent.ADDED and self._wanted(key):
                receiver.connect(service)

    def _framework_launch(self) -> None:
        wanted = self.framework.data.receive_from
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
    def _framework_start(self, run_id: str) -> None:
        self._close_receiver()  # left open by a failed run
        self.tracker = RunTracker()
        self.rx_records = self.rx_bytes = 0
        self._conditions, self._bor_seen, self._orphans = {}, set(), {}
        self.live.start_run()  # live: forget the previous run's BORs
        receiver = DataReceiver(zmq.Context.instance())
        with self._services_changed:
            services = [s for s in self._data_services.values() if self._wanted(s.name)]
        for service in services:
            receiver.connect(service)
        with self._receiver_lock:
            self._receiver = receiver
        gc_relief.acquire()

    def do_run(self, run_id: str) -> str | None:
        """The framework's receive loop: runs until stopped and every EOR is in (or timed out)."""
        receiver = self._receiver
        if receiver is None:
            return None
        eor_timeout = self.framework.data.eor_timeout
        dispatch = self._dispatch
        stop_event = self._stop_event
        last_activity = time.monotonic()
        stop_seen: float | None = None
        while self.state is not State.ERROR and not self._closed:
            received = False
            self.live.service()  # live: new subscribers get the BORs
            for message, size in receiver.poll(_POLL_MS):
                dispatch(message, size)
                received = True
                if self._closed:
                    break
            now = time.monotonic()
            if received:
                last_activity = now
            if stop_event.is_set():
                if stop_seen is None:
                    stop_seen = now
                if not self.tracker.pending_eor():
                    break
                if now - max(stop_seen, last_activity) > eor_timeout:
                    break
                if now - stop_seen > _MAX_EOR_WAIT_FACTOR * eor_timeout:
                    break
        return None

    def _dispatch(self, message: CDTP2Message, size: int) -> None:
        sender = message.sender
        try:
            if message.msg_type is CDTPType.DATA:
                records = message.records
                self.tracker.on_data_fast(sender, records, time.monotonic())
                self.live.accept(message, self._receiver_frames())  # live: publish
                self.rx_records += len(records)
                self.rx_bytes += size
                self.last_message_bytes = size
                self.receive_data_batch(sender, records)
            elif message.msg_type is CDTPType.BOR:
                user_tags, config = split_bor_eor(message)
                self.tracker.on_bor(sender, user_tags, config, time.monotonic())
                self.live.accept(message, self._receiver_frames())  # live: publish
                self._bor_seen.add(sender.lower())
                self.log.getChild("data").info("BOR from %s", sender)
                self.receive_bor(sender, user_tags, config)
            else:
                user_tags, metadata = split_bor_eor(message)
                self._sync_flags()
                metadata = self._with_own_flags(
                    self.tracker.on_eor(sender, user_tags, metadata, time.monotonic())
                )
                self.live.accept(message, self._receiver_frames())  # live: publish
                self.log.getChild("data").info(
                    "EOR from %s: %s records, condition %s",
                    sender,
                    metadata.get("data_records"),
                    metadata.get("condition"),
                )
                self._conditions[sender] = int(metadata.get("condition_code", 0) or 0)
                self.receive_eor(sender, user_tags, metadata)
        except (DataProtocolError, DecodeError) as exc:
            if message.msg_type is CDTPType.DATA and sender.lower() not in self._bor_seen:
                self._orphan_records(sender, len(message.records))
            else:
                self._protocol_warning("message from %s dropped: %s", sender, exc)

    def _receiver_frames(self) -> list[Any]:
        """The received frames of the message being dispatched (for the live service)."""
        receiver = self._receiver
        return receiver.last_frames if receiver is not None else []

    def _orphan_records(self, sender: str, count: int) -> None:
        """Records of a sender whose BOR never came: another receiver probably took it."""
        first = sender not in self._orphans
        self._orphans[sender] = self._orphans.get(sender, 0) + count
        if first:
            self.log.getChild("data").warning(
                "records of %s arrive without its BOR: another receiver takes part of its data "
                "(each message goes to one receiver); give each transmitter one receiver with "
                "_data.receive_from",
                sender,
            )

    def _sync_flags(self) -> None:
        """Pass a DEGRADED mark of this satellite's run on to the tracker."""
        if self.run_condition & RunCondition.DEGRADED and not self.tracker.degraded:
            self.tracker.mark_degraded()

    def _with_own_flags(self, metadata: dict[str, Any], extra: int = 0) -> dict[str, Any]:
        """OR this run's TAINTED mark (and ``extra``) into EOR run metadata."""
        added = extra | (self.run_condition & RunCondition.TAINTED)
        code = metadata.get("condition_code", 0)
        if added and isinstance(code, int) and code | added != code:
            metadata["condition_code"] = code | added
            metadata["condition"] = describe_condition(code | added)
        return metadata

    def _finish_run(self, interrupted: bool) -> None:
        """Substitute EORs for senders that sent none, then close the data sockets."""
        self._sync_flags()
        extra = RunCondition.INTERRUPTED if interrupted else 0
        for sender in self.tracker.pending_eor():
            metadata = self.tracker.substitute_eor(sender, self.run_id, datetime.now(timezone.utc))
            metadata = self._with_own_flags(metadata, extra)
            self.log.getChild("data").warning(
                "no EOR from %s: substitute EOR with condition %s", sender, metadata["condition"]
            )
            self._conditions[sender] = int(metadata.get("condition_code", 0) or 0)
            self.live.substitute_eor(sender, metadata)  # live: publish the substitute
            self.receive_eor(sender, {}, metadata)
        self._close_receiver()

    def _close_receiver(self) -> None:
        with self._receiver_lock:
            receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
            gc_relief.release()

    def _framework_stop(self) -> None:
        self._finish_run(interrupted=self.state is State.interrupting)
        self.metrics.publish_now("RX_RECORDS", self.rx_records)
        self.metrics.publish_now("RX_BYTES", self.rx_bytes)
        self.metrics.publish_now("RUN_CONDITION", self.run_condition_text())

    def run_condition_text(self) -> str:
        """The run's condition as this receiver saw it: the flags of all its EORs, ``NO_BOR``
        when records came without their BOR, ``NO_DATA`` when no sender began a run here."""
        if not self._conditions and not self._orphans:
            return "NO_DATA"
        code = 0
        for value in self._conditions.values():
            code |= value
        text = describe_condition(code)
        if self._orphans:
            text = "NO_BOR" if text == "GOOD" else f"{text}|NO_BOR"
        return text

    def _framework_failure(self, previous: State) -> None:
        # The receive loop in do_run sees ERROR and returns; the sockets are closed by the next
        # start, or by close().
        self._stop_event.set()

    def _close_extra(self) -> None:
        # Called from any thread: the receive loop notices ``_closed`` within one poll.
        self.live.close()  # live: close the live sockets
        if not self._worker_idle(2.0):
            self.log.warning("receive loop still running at close; data sockets left open")
            return
        self._close_receiver()

    def _worker_idle(self, timeout: float) -> bool:
        """Wait until the worker thread finished its current job (the receive loop)."""
        done = threading.Event()
        try:
            self._worker.submit(done.set)
        except RuntimeError:  # executor already shut down
            return True
        return done.wait(timeout)
