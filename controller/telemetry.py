"""Controller layer: follow a few metrics of the group (e.g. TX_RECORDS, RX_RECORDS) during runs.

:class:`MetricWatcher` subscribes to ``STAT/<NAME>`` of every discovered monitoring service of
the group, with a SUB socket per satellite served by the controller's event loop (so satellites
may leave and return, killed or not, any number of times), keeps the latest value per
(satellite, metric) and derives a rate from successive values. It is what ``Controller run``
shows in its progress line and what ``until`` conditions of scans look at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from constellation.errors import DecodeError
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId
from constellation.net.subscriptions import PeerSubscriptions
from constellation.protocol.cmdp1 import CMDP1Metric, decode_cmdp1
from controller.controller import Controller

__all__ = ["RECORD_METRICS", "MetricWatcher", "Sample"]

#: The metrics ``Controller run`` shows: records sent and received in the current run.
RECORD_METRICS = ("TX_RECORDS", "RX_RECORDS")


@dataclass(frozen=True)
class Sample:
    """The latest value of one metric of one satellite."""

    value: Any
    unit: str
    received: float  # time.monotonic() on arrival
    rate: float | None  # change per second since the previous value, if numeric


class MetricWatcher:
    """Latest values of chosen metrics of every satellite of a controller's group."""

    def __init__(self, controller: Controller, metrics: Iterable[str] = RECORD_METRICS) -> None:
        self.ctl = controller
        self.metrics = tuple(dict.fromkeys(m.upper() for m in metrics))
        self._lock = threading.Condition()
        self._samples: dict[tuple[str, str], Sample] = {}
        self._loop = controller.loop
        limit = controller.settings.max_message_size
        self._subs = PeerSubscriptions(self._loop, self._on_frames, max_message_size=limit)
        self._loop.run_sync(lambda: self._subs.set_topics(f"STAT/{m}" for m in self.metrics))
        self._closed = False
        controller.discovery.add_listener([ServiceId.MONITORING], self._on_service)

    # --- discovery (discovery thread) and socket (loop thread) ----------------------------------
    def _on_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if not self._closed:
            self._loop.call_soon(self._update_endpoint, event, service)

    def _update_endpoint(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if self._closed:
            return
        key = service.name.lower()
        if event is DiscoveryEvent.ADDED:
            self._subs.connect(key, service.endpoint)
        elif self._subs.endpoint(key) == service.endpoint:
            self._subs.drop(key)

    def _on_frames(self, key: str, frames: list[bytes]) -> None:
        try:
            message = decode_cmdp1(frames)
        except DecodeError:
            return
        if isinstance(message, CMDP1Metric):
            self._store(message)

    def _store(self, message: CMDP1Metric) -> None:
        now = time.monotonic()
        key = (message.sender, message.name)
        with self._lock:
            previous = self._samples.get(key)
            rate = None
            if (
                previous is not None
                and _is_number(previous.value)
                and _is_number(message.value)
                and now > previous.received
                and message.value >= previous.value
            ):
                rate = (message.value - previous.value) / (now - previous.received)
            self._samples[key] = Sample(message.value, message.unit, now, rate)
            self._lock.notify_all()

    # --- queries ----------------------------------------------------------------------------------
    def latest(self, metric: str, satellite: str | None = None) -> dict[str, Sample]:
        """Sender -> latest sample of ``metric`` (of one ``satellite`` only, if given)."""
        metric = metric.upper()
        with self._lock:
            return {
                sender: sample
                for (sender, name), sample in self._samples.items()
                if name == metric and (satellite is None or sender.lower() == satellite.lower())
            }

    def reset(self) -> None:
        """Forget all values (call at the start of a run: counters restart per run)."""
        with self._lock:
            self._samples.clear()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the next value of any metric."""
        with self._lock:
            self._lock.wait(timeout)

    def close(self) -> None:
        """Unsubscribe and close the socket; the controller stays usable."""
        if self._closed:
            return
        self._closed = True
        self.ctl.discovery.remove_listener(self._on_service)

        try:
            self._loop.run_sync(self._subs.close)
        except TimeoutError:
            pass

    def __enter__(self) -> MetricWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
