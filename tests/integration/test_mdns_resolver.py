"""mDNS: resolving an instance happens in our own thread, never in zeroconf's browser thread."""

from __future__ import annotations

import threading
from typing import Any

from zeroconf import IPVersion, ServiceStateChange

from constellation.net.discovery import DiscoveryEvent, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.net.mdns import SERVICE_TYPES, MdnsDiscovery
from tests.helpers import LOOPBACK, wait_for


class _Info:
    port = 23999
    properties = {b"group": b"resolver-test", b"name": b"Peer.slow"}

    def parsed_addresses(self, version: IPVersion) -> list[str]:
        return [LOOPBACK]


def test_browser_callback_returns_while_resolution_blocks() -> None:
    disc = MdnsDiscovery("resolver-test", "Test.self", NetworkScope((LOOPBACK,)))
    release = threading.Event()
    resolving = threading.Event()

    def slow_resolve(type_: str, name: str, timeout: int = 0) -> Any:
        resolving.set()
        release.wait(10)
        return _Info()

    seen: list[tuple[DiscoveryEvent, str]] = []
    disc._zc.get_service_info = slow_resolve  # type: ignore[method-assign]
    disc._listeners.append((frozenset({ServiceId.CONTROL}), lambda e, s: seen.append((e, s.name))))
    type_ = SERVICE_TYPES[ServiceId.CONTROL]
    try:
        callback = threading.Thread(
            target=disc._on_change,
            args=(disc._zc, type_, f"slow.{type_}", ServiceStateChange.Added),
            daemon=True,
        )
        callback.start()
        callback.join(2.0)
        assert not callback.is_alive(), "the browser thread waits for the resolution"
        assert resolving.wait(5)
        release.set()
        wait_for(lambda: seen == [(DiscoveryEvent.ADDED, "Peer.slow")], 5, what="added")
        disc._on_change(disc._zc, type_, f"slow.{type_}", ServiceStateChange.Removed)
        wait_for(lambda: len(seen) == 2, 5, what="removed")
        assert seen[1] == (DiscoveryEvent.REMOVED, "Peer.slow")
    finally:
        release.set()
        disc.close()


def test_changes_resolved_out_of_order_end_in_the_newest() -> None:
    """Resolvers run in parallel: a re-announce (Removed, then Added) whose Added is applied
    before its Removed must leave the instance known, and an older Added finishing after a newer
    Removed must not bring it back (seen: a restarted transmitter's DATA service lost)."""
    disc = MdnsDiscovery("resolver-test", "Test.self", NetworkScope((LOOPBACK,)))
    disc._zc.get_service_info = lambda type_, name, timeout=0: _Info()  # type: ignore[method-assign]
    seen: list[tuple[DiscoveryEvent, str]] = []
    disc._listeners.append((frozenset({ServiceId.CONTROL}), lambda e, s: seen.append((e, s.name))))
    type_ = SERVICE_TYPES[ServiceId.CONTROL]
    name = f"peer.{type_}"
    try:
        disc._apply_change(type_, name, ServiceStateChange.Added, 1)
        disc._apply_change(type_, name, ServiceStateChange.Added, 3)  # the re-announce's Added
        disc._apply_change(type_, name, ServiceStateChange.Removed, 2)  # its Removed, late
        assert seen == [(DiscoveryEvent.ADDED, "Peer.slow")]
        assert [s.name for s in disc.known(ServiceId.CONTROL)] == ["Peer.slow"]
        disc._apply_change(type_, name, ServiceStateChange.Removed, 5)
        disc._apply_change(type_, name, ServiceStateChange.Added, 4)  # older than the removal
        assert seen == [(DiscoveryEvent.ADDED, "Peer.slow"), (DiscoveryEvent.REMOVED, "Peer.slow")]
    finally:
        disc.close()
