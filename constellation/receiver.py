"""Assembly layer: ReceiverSatellite — per-sender run tracking on top of ``net.data``.

The receiver connects to every transmitter of its group (or those in ``_data.receive_from``)
when a run starts and reads data in ``do_run`` (the worker thread). A pure
:class:`~constellation.core.run_tracker.RunTracker` checks BOR → DATA → EOR per sender; user code
gets ``receive_bor``, ``receive_data_batch`` (or ``receive_data``) and ``receive_eor``. On stop
it drains, waits ``_data.eor_timeout`` for missing EORs and writes a substitute EOR flagged
ABORTED for every sender that vanished without one.
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
from constellation.metrics import RateProbe
from constellation.net.data import DataReceiver
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, DataRecord, split_bor_eor
from constellation.satellite import Satellite

__all__ = ["ReceiverSatellite"]

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})
#: How long ``launching`` waits for the transmitters of ``_data.receive_from`` to be found.
LAUNCH_DISCOVERY_TIMEOUT = 5.0


class ReceiverSatellite(Satellite):
    """A satellite that receives the runs of transmitters."""

    handles_data = True

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self._data_services: dict[str, DiscoveredService] = {}
        self._services_changed = threading.Condition()
        self._receiver: DataReceiver | None = None
        self.tracker = RunTracker()
        self.rx_records = 0
        self.rx_bytes = 0
        self._protocol_warning = RateLimitedWarning(self.log.getChild("data"))
        self.metrics.register(
            "RX_RECORDS",
            "",
            "Records received in this run",
            lambda: self.rx_records,
            5.0,
            _RUN_METRIC_STATES,
        )
        self.metrics.register(
            "RX_BYTES",
            "B",
            "Message bytes received in this run",
            lambda: self.rx_bytes,
            5.0,
            _RUN_METRIC_STATES,
        )
        self._rate_probe = RateProbe()
        self.metrics.register(
            "RX_RATE",
            "Hz",
            "Records received per second",
            lambda: self._rate_probe.rate(self.rx_records),
            5.0,
            _RUN_METRIC_STATES,
        )

    # --- user callbacks (worker thread) -------------------------------------------------------
    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        """A transmitter began its run."""

    def receive_data(self, sender: str, record: DataRecord) -> None:
        """One record of ``sender``."""

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        """Many records of ``sender`` at once (default: ``receive_data`` for each)."""
        for record in records:
            self.receive_data(sender, record)

    def receive_eor(
        self, sender: str, user_tags: dict[str, Any], run_metadata: dict[str, Any]
    ) -> None:
        """A transmitter ended its run (or vanished: then ``run_metadata['substitute']``)."""

    # --- discovery of transmitters --------------------------------------------------------------
    def _announce(self) -> None:
        super()._announce()
        assert self.discovery is not None
        self.discovery.add_listener([ServiceId.DATA], self._on_data_service)

    def _wanted(self, name: str) -> bool:
        wanted = self.framework.data.receive_from
        return wanted is None or name.lower() in {w.lower() for w in wanted}

    def _on_data_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        key = service.name.lower()
        with self._services_changed:
            if event is DiscoveryEvent.ADDED:
                self._data_services[key] = service
            else:
                self._data_services.pop(key, None)
            self._services_changed.notify_all()
        receiver = self._receiver
        if receiver is not None and self._wanted(service.name):
            if event is DiscoveryEvent.ADDED:
                receiver.connect(service)
            else:
                receiver.disconnect(service.name)

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
        self.tracker = RunTracker()
        self.rx_records = self.rx_bytes = 0
        receiver = DataReceiver(zmq.Context.instance())
        with self._services_changed:
            services = [s for s in self._data_services.values() if self._wanted(s.name)]
        for service in services:
            receiver.connect(service)
        self._receiver = receiver

    def do_run(self, run_id: str) -> str | None:
        """The framework's receive loop: runs until stopped and every EOR is in (or timed out)."""
        receiver = self._receiver
        assert receiver is not None
        eor_timeout = self.framework.data.eor_timeout
        last_activity = time.monotonic()
        stop_seen: float | None = None
        while self.state is not State.ERROR:
            items = receiver.poll(50)
            now = time.monotonic()
            for message, size in items:
                self._dispatch(message, size, now)
                last_activity = now
            if self.stop_requested():
                if stop_seen is None:
                    stop_seen = now
                if not self.tracker.pending_eor():
                    break
                if now - max(stop_seen, last_activity) > eor_timeout:
                    break
        return None

    def _dispatch(self, message: CDTP2Message, size: int, now: float) -> None:
        sender = message.sender
        self.rx_bytes += size
        try:
            if message.msg_type == CDTPType.DATA:
                self.tracker.on_data_fast(sender, message.records, now)
                self.rx_records += len(message.records)
                self.receive_data_batch(sender, message.records)
            elif message.msg_type == CDTPType.BOR:
                user_tags, config = split_bor_eor(message)
                self.tracker.on_bor(sender, user_tags, config, now)
                self.log.getChild("data").info("BOR from %s", sender)
                self.receive_bor(sender, user_tags, config)
            else:
                user_tags, metadata = split_bor_eor(message)
                metadata = self.tracker.on_eor(sender, user_tags, metadata, now)
                self.log.getChild("data").info(
                    "EOR from %s: %s records, condition %s",
                    sender,
                    metadata.get("data_records"),
                    metadata.get("condition"),
                )
                self.receive_eor(sender, user_tags, metadata)
        except (DataProtocolError, DecodeError) as exc:
            self._protocol_warning("data from %s dropped: %s", sender, exc)

    def _finish_run(self, interrupted: bool) -> None:
        """Make substitute EORs for senders that sent none, then close the data sockets."""
        for sender in self.tracker.pending_eor():
            metadata = self.tracker.substitute_eor(sender, self.run_id, datetime.now(timezone.utc))
            if interrupted:
                code = int(metadata.get("condition_code", 0)) | RunCondition.INTERRUPTED
                metadata["condition_code"] = code
                metadata["condition"] = describe_condition(code)
            self.log.getChild("data").warning(
                "no EOR from %s: substitute EOR with condition %s", sender, metadata["condition"]
            )
            self.receive_eor(sender, {}, metadata)
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None

    def _framework_stop(self) -> None:
        self._finish_run(interrupted=self.state is State.interrupting)
        self.metrics.publish_now("RX_RECORDS", self.rx_records)
        self.metrics.publish_now("RX_BYTES", self.rx_bytes)

    def _framework_failure(self, previous: State) -> None:
        # The receive loop in do_run sees ERROR and returns; its sockets are closed on close().
        self._stop_event.set()

    def _close_extra(self) -> None:
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
