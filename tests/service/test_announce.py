"""``serve -g``'s mDNS announcement, found by a zeroconf browser on loopback."""

from __future__ import annotations

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

from constellation.service.announce import SERVICE_TYPE, Announcement
from tests.helpers import LOOPBACK, unique_group, wait_for


def test_announced_and_withdrawn() -> None:
    group = unique_group("data")
    found: dict[str, str] = {}
    browser_zc = Zeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)

    def changed(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        found[name] = state_change.name

    browser = ServiceBrowser(browser_zc, SERVICE_TYPE, handlers=[changed])
    announcement = Announcement(group, "DataService.test", LOOPBACK, 8123)
    try:
        name = announcement.info.name
        wait_for(lambda: found.get(name) == "Added", timeout=15, what="announcement")
        info = browser_zc.get_service_info(SERVICE_TYPE, name, timeout=3000)
        assert info is not None and info.port == 8123
        assert info.properties[b"group"] == group.encode()
        assert info.properties[b"path"] == b"/api"
    finally:
        announcement.close()
    wait_for(lambda: found.get(name) == "Removed", timeout=15, what="withdrawal")
    browser.cancel()
    browser_zc.close()
