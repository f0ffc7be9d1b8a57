"""I/O layer: the ``both`` discovery mode, mDNS and CHIRP at once.

Services are announced and browsed on both backends. Their events are merged per
(canonical name, service): a service seen by both is reported once. It is removed when neither
backend has it any more, or at once when CHIRP removes it — CHIRP only removes a service when the
peer departs or replaces it, whereas an mDNS record may linger or vanish with its cache. When
the two disagree about the port (a restarted peer), the most recent announcement wins. Names
learned through mDNS are handed to the CHIRP backend, so its peers need no name look-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from constellation.net.chirp import ChirpDiscovery
from constellation.net.discovery import (
    DiscoveredService,
    Discovery,
    DiscoveryEvent,
    DiscoveryListener,
    ServiceId,
)
from constellation.net.interfaces import NetworkScope
from constellation.net.mdns import MdnsDiscovery

__all__ = ["CombinedDiscovery"]

log = logging.getLogger("constellation.net.combined")

_Key = tuple[str, ServiceId]


class CombinedDiscovery(Discovery):
    """Discovery on mDNS and CHIRP together, reporting each service once."""

    def __init__(
        self,
        group: str,
        name: str,
        scope: NetworkScope,
        *,
        mdns: Discovery | None = None,
        chirp: ChirpDiscovery | None = None,
    ) -> None:
        super().__init__(group, name, scope)
        self._merge_lock = threading.RLock()  # taken before self._lock; keeps events in order
        self._seen: dict[_Key, dict[str, DiscoveredService]] = {}  # key -> backend -> service
        self._browsing: set[ServiceId] = set()
        self.mdns = mdns if mdns is not None else MdnsDiscovery(group, name, scope)
        try:
            self.chirp = chirp if chirp is not None else ChirpDiscovery(group, name, scope)
        except Exception:
            self.mdns.close()
            raise
        self._closed = False

    def find_namesake(self, timeout: float) -> str | None:
        return self.chirp.find_namesake(timeout / 2) or self.mdns.find_namesake(timeout / 2)

    # --- announcing ------------------------------------------------------------------------
    def announce(self, service: ServiceId, port: int) -> None:
        self.chirp.announce(service, port)
        self.mdns.announce(service, port)

    def withdraw(self, service: ServiceId) -> None:
        self.chirp.withdraw(service)
        self.mdns.withdraw(service)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for backend in (self.chirp, self.mdns):
            try:
                backend.close()
            except Exception:
                log.exception("closing %s failed", type(backend).__name__)

    # --- browsing --------------------------------------------------------------------------
    def add_listener(self, services: Iterable[ServiceId], listener: DiscoveryListener) -> None:
        wanted = frozenset(services)
        # Start the backends first, outside the merge lock: they report while holding their own
        # emit locks and then take the merge lock (lock order backend -> merge; taking them the
        # other way round here deadlocked against CHIRP's name resolver).
        self._start_browsing(wanted)
        with self._merge_lock:  # no event may overtake the replay of known services
            super().add_listener(wanted, listener)

    def _start_browsing(self, services: frozenset[ServiceId]) -> None:
        with self._lock:
            new = services - self._browsing
            self._browsing |= new
        if new:
            self.mdns.add_listener(new, self._on_mdns)
            self.chirp.add_listener(new, self._on_chirp)

    def request(self, service: ServiceId) -> None:
        self.chirp.request(service)
        self.mdns.request(service)

    def learn_name(self, name: str) -> bool:
        """Hand a canonical name to the CHIRP backend (see :meth:`ChirpDiscovery.learn_name`)."""
        return self.chirp.learn_name(name)

    # --- merging ---------------------------------------------------------------------------
    def _on_mdns(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        if event is DiscoveryEvent.ADDED:
            self.chirp.learn_name(service.name)
        self._merge("mdns", event, service)

    def _on_chirp(self, event: DiscoveryEvent, service: DiscoveredService) -> None:
        self._merge("chirp", event, service)

    def _merge(self, backend: str, event: DiscoveryEvent, service: DiscoveredService) -> None:
        key = service.key
        with self._merge_lock:
            with self._lock:
                reported = self._known.get(key)
                seen = self._seen.setdefault(key, {})
                if event is DiscoveryEvent.ADDED:
                    seen[backend] = service
                    if reported is not None and reported.port == service.port:
                        return
                    replacement: DiscoveredService | None = service
                else:
                    if seen.get(backend) == service:
                        del seen[backend]
                    if reported is None or reported.port != service.port:
                        self._forget_if_empty(key)
                        return
                    if backend == "chirp":  # a departure (or replacement): drop stale copies
                        for other, copy in list(seen.items()):
                            if copy.port == service.port:
                                del seen[other]
                    replacement = next(iter(seen.values()), None)
                    self._forget_if_empty(key)
                    if replacement is not None and replacement.port == reported.port:
                        return  # the other backend still sees the same instance
            if replacement is None:
                self._service_removed(service.name, service.service)
            else:
                self._service_added(replacement)

    def _forget_if_empty(self, key: _Key) -> None:
        if not self._seen.get(key):
            self._seen.pop(key, None)
