"""I/O layer: find the receivers' live services over mDNS (DNS-SD type ``_cnstln-live._tcp``).

Every receiver announces its live socket as a service of its own under that type (TXT keys
``group``, ``name``, ``lossless``; :meth:`constellation.live.hooks.ReceiverLive.announce`). A
:class:`LiveBrowser` browses the type with a zeroconf instance of its own, restricted to the
scope's interfaces. Zeroconf's browser callbacks only queue the change; one thread of ours
resolves the instances in the order they changed (up to 3 s each) and reports the endpoints of
the group's receivers through ``on_found`` / ``on_lost``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

from constellation.live.hooks import LIVE_MDNS_TYPE
from constellation.live.protocol import LiveEndpoint, endpoint_from_txt
from constellation.net.interfaces import NetworkScope, choose_address
from constellation.net.mdns import txt_properties

__all__ = ["LiveBrowser"]

log = logging.getLogger("constellation.live")

_RESOLVE_TIMEOUT_MS = 3000
_MAX_PENDING = 10_000


class LiveBrowser:
    """mDNS browser of the live services of ``group``'s receivers."""

    def __init__(
        self,
        group: str,
        scope: NetworkScope,
        on_found: Callable[[LiveEndpoint], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.group = group
        self._on_found = on_found
        self._on_lost = on_lost
        self._changes: queue.Queue[tuple[str, ServiceStateChange] | None] = queue.Queue(
            _MAX_PENDING
        )
        self._receivers: dict[str, str] = {}  # instance name -> receiver (resolver thread only)
        self._closing = False
        interfaces: Any = list(scope.addresses) if scope.addresses else InterfaceChoice.All
        self._zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._thread = threading.Thread(target=self._run, name="live-mdns", daemon=True)
        self._thread.start()
        self._browser = ServiceBrowser(self._zc, LIVE_MDNS_TYPE, handlers=[self._on_change])

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._browser.cancel()
        try:
            self._changes.put_nowait(None)
        except queue.Full:  # the thread sees the flag at its next change
            pass
        self._zc.close()
        self._thread.join(_RESOLVE_TIMEOUT_MS / 1000 + 1)

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """Zeroconf's thread: queue the change, never block."""
        if self._closing or service_type != LIVE_MDNS_TYPE:
            return
        try:
            self._changes.put_nowait((name, state_change))
        except queue.Full:
            log.warning("mDNS change of %s dropped: %d changes wait", name, _MAX_PENDING)

    def _run(self) -> None:
        while (change := self._changes.get()) is not None and not self._closing:
            try:
                self._apply(*change)
            except Exception:  # one bad instance never stops the browsing
                if not self._closing:
                    log.debug("live service %s not resolved", change[0], exc_info=True)

    def _apply(self, name: str, change: ServiceStateChange) -> None:
        if change is ServiceStateChange.Removed:
            receiver = self._receivers.pop(name, None)
            if receiver is not None:
                self._on_lost(receiver)
            return
        info = self._zc.get_service_info(LIVE_MDNS_TYPE, name, timeout=_RESOLVE_TIMEOUT_MS)
        if info is None or not info.port or self._closing:
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses:
            return
        properties = txt_properties(info)
        endpoint = endpoint_from_txt(self.group, properties, choose_address(addresses), info.port)
        if endpoint is not None:
            self._receivers[name] = endpoint.receiver
            self._on_found(endpoint)
