"""MissionControl web: the bridge from a group (controller, heartbeats, monitoring) to the page.

:class:`Backend` owns a :class:`~controller.controller.Controller` and a
:class:`~constellation.net.listener.MonitoringListener` sharing its discovery, feeds their
callbacks into the pure :class:`~controller.web.group_model.GroupModel` under one lock and
publishes the resulting events on the :class:`~controller.web.stream.Hub`. A poller thread reads
heartbeat lives and roles twice a second. Nothing here runs in the web server's event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from constellation.core.environment import ProcessSettings
from constellation.net.listener import MonitoringListener
from constellation.protocol.cmdp1 import CMDP1Log, CMDP1Metric, CMDP1Notification
from controller.controller import Controller
from controller.handles import ask_quietly
from controller.web.group_model import GroupModel
from controller.web.stream import Hub

__all__ = ["Backend"]

log = logging.getLogger("constellation.web")


def _seconds(stamp: Any) -> float:
    try:
        return float(stamp.to_unix())
    except AttributeError:
        return time.time()


class Backend:
    """A group as the page sees it; ``model`` is guarded by ``lock``."""

    def __init__(
        self,
        group: str,
        interface: str | None = None,
        discovery: str = "mdns",
        log_level: str = "INFO",
        run_prefix: str = "run",
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        settings: ProcessSettings | None = None,
    ) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.model = GroupModel(group, run_prefix)
        self.hub = Hub()
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="web-actions")
        self._stop = threading.Event()
        #: Satellites that answer ``get_live_endpoint`` (receivers with a live data tap).
        self.receivers: set[str] = set()
        #: Called with the number of receivers whenever it changes (the live panel's reader).
        self.on_receivers: Callable[[int], None] | None = None
        self.ctl = Controller(
            group, interface, discovery=discovery, name="MissionControl", settings=settings
        )
        try:
            self.listener = MonitoringListener(
                group,
                interface,
                discovery=self.ctl.discovery,
                level=log_level,
                metrics=[],
                on_log=self._on_log,
                on_metric=self._on_metric,
                on_notification=self._on_notification,
                on_peer=self._on_peer,
                max_message_size=self.ctl.settings.max_message_size,
            )
        except BaseException:
            self.ctl.close()
            raise
        self.ctl.on_state_change(self._on_state)
        self.ctl.on_join(self._on_join)
        self.ctl.on_leave(self._on_leave)
        for name in self.ctl.satellites:
            self._on_join(name)
        self._poll_interval = poll_interval
        self._poller = threading.Thread(target=self._poll, name="web-poller", daemon=True)
        self._poller.start()

    # --- feeding the model ----------------------------------------------------------------------
    def apply(self, change: Callable[[GroupModel, float], list[tuple[str, Any]]]) -> None:
        """Run ``change(model, now)`` under the lock and publish its events."""
        with self.lock:
            events = change(self.model, self.clock())
        self.hub.publish(events)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.model.snapshot(self.clock())

    def _on_state(self, name: str, old: str, new: str) -> None:
        status = self.ctl.statuses.get(name)
        self.apply(lambda m, now: m.state(name, new, now, status))

    def _on_join(self, name: str) -> None:
        state = self.ctl.states.get(name, "?")
        self.apply(lambda m, now: [*m.joined(name, now), *m.state(name, state, now)])
        try:
            self.pool.submit(self._ask_run_id, name)
            self.pool.submit(self._ask_live, name)
        except RuntimeError:  # shutting down
            pass

    def _ask_live(self, name: str) -> None:
        """Whether ``name`` is a receiver with a live tap (others answer UNKNOWN)."""
        reply = ask_quietly(self.ctl.satellites, name, "get_live_endpoint", self.ctl.timeout)
        if reply is not None and reply.ok and name in self.ctl.satellites:
            self._receivers_changed(add=name)

    def _receivers_changed(self, add: str | None = None, remove: str | None = None) -> None:
        with self.lock:
            before = len(self.receivers)
            if add is not None:
                self.receivers.add(add)
            if remove is not None:
                self.receivers.discard(remove)
            count = len(self.receivers)
            callback = self.on_receivers
            if callback is not None and count != before:
                callback(count)  # under the lock: calls arrive in order (it does not block)

    def _ask_run_id(self, name: str) -> None:
        reply = ask_quietly(self.ctl.satellites, name, "get_run_id", self.ctl.timeout)
        if reply is not None and reply.ok:
            self.apply(lambda m, now: m.run_ids_seen([reply.verb]))

    def _on_leave(self, name: str) -> None:
        self.apply(lambda m, now: m.left(name, now))
        self._receivers_changed(remove=name)

    def _on_log(self, message: CMDP1Log) -> None:
        when = _seconds(message.time)
        self.apply(
            lambda m, now: m.log(
                message.sender, message.level, message.log_topic, message.message, when
            )
        )

    def _on_metric(self, message: CMDP1Metric) -> None:
        if message.name.upper() == "RUN_CONDITION" and isinstance(message.value, str):
            text = message.value
            self.apply(lambda m, now: m.run_condition(message.sender, text, now))
            return
        wall = time.time()
        self.apply(
            lambda m, now: m.metric(message.sender, message.name, message.value, message.unit, wall)
        )

    def _on_notification(self, message: CMDP1Notification) -> None:
        if message.kind == "STAT":
            names = [t.removeprefix("STAT/") for t in message.topics]
            self.apply(lambda m, now: m.announced(message.sender, names))

    def on_eor(self, sender: str, run_id: str, condition: str) -> None:
        """An EOR seen by the live tap (:class:`~controller.web.live_source.LiveSource`)."""
        self.apply(lambda m, now: m.eor(sender, run_id, condition, now))

    def _on_peer(self, name: str, connected: bool) -> None:
        if not connected:
            self.apply(lambda m, now: m.sender_gone(name))

    def _poll(self) -> None:
        last_header = 0.0
        while not self._stop.wait(self._poll_interval):
            try:
                peers = self.ctl.heartbeats.peers()
                with self.lock:
                    now = self.clock()
                    events = []
                    for info in peers.values():
                        name = self._canonical(info.name)
                        if name in self.model.sats:
                            lives = info.lives
                            events += self.model.heartbeat(
                                name, lives, info.role.name, info.status, now
                            )
                    running = self.model.run_started is not None and self.model.run_ended is None
                    if running and now - last_header >= 1.0:
                        last_header = now
                        events.append(("header", self.model.header(now)))
                self.hub.publish(events)
            except Exception:  # the poller must outlive any surprise
                log.exception("web poller failed")

    def _canonical(self, name: str) -> str:
        lower = name.lower()
        for known in self.model.sats:
            if known.lower() == lower:
                return known
        return name

    def close(self) -> None:
        self._stop.set()
        self._poller.join(2)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.listener.close()
        self.ctl.close()
