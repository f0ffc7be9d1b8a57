"""I/O layer: find the live services of a group's receivers.

With mDNS (``mdns``, and ``both``), a :class:`~constellation.live.browse.LiveBrowser` browses
the receivers' ``_cnstln-live._tcp`` services. With CHIRP (``chirp``, and ``both``), which
knows no service of that kind, the group's discovery reports every control service and a
:class:`LiveLocator` asks each one, over CSCP, for ``get_live_endpoint``: receivers answer with
their live ports, other satellites with UNKNOWN (a standard reply: no peer ever gets a message
it does not know). Transmitters' data services are collected too, as the senders a
subscription may name. Found endpoints are reported through ``on_found``/``on_lost``.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.live.browse import LiveBrowser
from constellation.live.hooks import LIVE_COMMAND
from constellation.live.protocol import LiveEndpoint
from constellation.net.discovery import (
    DiscoveredService,
    Discovery,
    DiscoveryEvent,
    ServiceId,
    make_discovery,
)
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = ["LiveEndpoint", "LiveLocator"]

log = logging.getLogger("constellation.live")

_ASK_TIMEOUT_MS = 2000
_ASK_TRIES = 3
#: A receiver whose live service is not open is asked again this often, this many times.
_LATER_DELAY = 1.0
_LATER_TRIES = 30


class LiveLocator:
    """Discovery of the live endpoints of ``group`` (a thread asks the receivers)."""

    def __init__(
        self,
        group: str,
        scope: NetworkScope,
        discovery: str,
        on_found: Callable[[LiveEndpoint], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.name = f"LiveStreamer.s{uuid.uuid4().hex[:10]}"
        self._on_found = on_found
        self._on_lost = on_lost
        self._context: zmq.Context[Any] = zmq.Context.instance()
        self._asks: queue.Queue[DiscoveredService | None] = queue.Queue()
        self._senders: dict[str, str] = {}  # lower-cased -> canonical name of transmitters
        self._endpoints: dict[str, str] = {}  # receiver -> control endpoint answered
        self._tries: dict[DiscoveredService, int] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="live-locator", daemon=True)
        self._thread.start()
        kind = discovery.lower()
        self._browser: LiveBrowser | None = None
        self._discovery: Discovery | None = None
        try:
            self._discovery = make_discovery(kind, group, self.name, scope)
            if kind in ("mdns", "both"):
                self._browser = LiveBrowser(group, scope, on_found, on_lost)
        except Exception:
            self.close()
            raise
        asked = [ServiceId.DATA] if kind == "mdns" else [ServiceId.CONTROL, ServiceId.DATA]
        self._discovery.add_listener(asked, self._on_service)

    def senders(self) -> dict[str, str]:
        """Transmitters of the group known so far: lower-cased -> canonical name."""
        with self._changed:
            return dict(self._senders)

    def wait_for_senders(self, names: set[str], timeout: float) -> set[str]:
        """Wait until every lower-cased name in ``names`` is known; returns those missing."""
        with self._changed:
            self._changed.wait_for(lambda: names <= self._senders.keys(), timeout)
            return names - self._senders.keys()

    def close(self) -> None:
        self._closed = True
        self._asks.put(None)
        if self._browser is not None:
            self._browser.close()
        if self._discovery is not None:
            self._discovery.close()
        self._thread.join(5)

    def _on_service(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if service.service is ServiceId.DATA:
            with self._changed:
                if event is DiscoveryEvent.ADDED:
                    self._senders[service.name.lower()] = service.name
                self._changed.notify_all()
            return
        if event is DiscoveryEvent.ADDED:
            self._asks.put(service)
        elif self._endpoints.get(service.name) == service.endpoint:
            del self._endpoints[service.name]
            self._on_lost(service.name)

    def _run(self) -> None:
        while True:
            service = self._asks.get()
            if service is None or self._closed:
                return
            try:
                found = self._ask(service)
            except Exception as exc:  # never let the thread die on one peer
                log.debug("could not ask %s for its live endpoint: %s", service.name, exc)
                continue
            if found == "later":  # a receiver whose live service is not open yet
                self._retry(service)
            elif isinstance(found, LiveEndpoint) and not self._closed:
                self._endpoints[service.name] = service.endpoint
                self._on_found(found)

    def _retry(self, service: DiscoveredService) -> None:
        tries = self._tries.get(service, 0) + 1
        self._tries[service] = tries
        if tries <= _LATER_TRIES:
            timer = threading.Timer(_LATER_DELAY, self._asks.put, (service,))
            timer.daemon = True
            timer.start()

    def _ask(self, service: DiscoveredService) -> LiveEndpoint | str | None:
        """The live endpoint of ``service``'s satellite, None when it has none."""
        request = CSCP1Message(self.name, CSCPType.REQUEST, LIVE_COMMAND).encode()
        for _ in range(_ASK_TRIES):
            if self._closed:
                return None
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, 1 << 20)
            try:
                sock.connect(service.endpoint)
                sock.send_multipart(request)
                if not sock.poll(_ASK_TIMEOUT_MS):
                    continue
                frames = sock.recv_multipart()
            finally:
                sock.close(linger=0)
            try:
                reply = CSCP1Message.decode(frames)
            except DecodeError:
                return None
            return _endpoint(service, reply.msg_type, reply.payload)
        return None


def _endpoint(
    service: DiscoveredService, kind: CSCPType, payload: Any
) -> LiveEndpoint | str | None:
    """The endpoint in a reply; None: not a receiver; ``"later"``: ask again later."""
    if kind is not CSCPType.SUCCESS or not isinstance(payload, dict):
        return None  # not a receiver (UNKNOWN)
    port, lossless = payload.get("port"), payload.get("lossless_port")
    if type(port) is not int or type(lossless) is not int:
        return "later"  # a receiver whose live service is closed right now
    address = service.address
    return LiveEndpoint(service.name, f"tcp://{address}:{port}", f"tcp://{address}:{lossless}")
