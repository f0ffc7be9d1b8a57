"""Announce a data service in a Constellation group over mDNS (DNS-SD).

Service type ``_cnstldata._tcp.local.``; the instance name comes from the group and the host
(as for the other services, see :func:`constellation.net.mdns.instance_name`); the TXT record
carries ``group``, ``name`` and ``path=/api``. Announced only on the address the server binds.
"""

from __future__ import annotations

import socket

from zeroconf import IPVersion, ServiceInfo, Zeroconf

from constellation import __version__
from constellation.net.mdns import instance_name

__all__ = ["SERVICE_TYPE", "Announcement"]

SERVICE_TYPE = "_cnstldata._tcp.local."


class Announcement:
    """The registered service; :meth:`close` withdraws it."""

    def __init__(self, group: str, name: str, address: str, port: int) -> None:
        self._zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
        label = instance_name(group, name)
        self.info = ServiceInfo(
            SERVICE_TYPE,
            f"{label}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"group": group, "name": name, "path": "/api", "version": __version__},
        )
        self._zc.register_service(self.info)

    def close(self) -> None:
        self._zc.unregister_service(self.info)
        self._zc.close()
