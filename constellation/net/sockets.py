"""I/O layer: small helpers to create and bind ZeroMQ sockets within a network scope."""

from __future__ import annotations

from typing import Any

import zmq

from constellation.core.environment import BUILTIN_MAX_MESSAGE_SIZE
from constellation.net.interfaces import NetworkScope

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "bind_in_scope"]

#: Largest message accepted on control/heartbeat/monitoring sockets unless the owner is given
#: another limit (bytes): 16 MiB. Larger input makes ZeroMQ drop the connection of the sender
#: instead of allocating memory for it. The launcher takes ``CONSTELLATION_MAX_MESSAGE_SIZE``
#: into :class:`~constellation.core.environment.ProcessSettings`, which passes it on.
DEFAULT_MAX_MESSAGE_SIZE = BUILTIN_MAX_MESSAGE_SIZE


def bind_in_scope(sock: zmq.Socket[Any], scope: NetworkScope, port: int = 0) -> int:
    """Bind ``sock`` on every address of ``scope``; port 0 picks a free port. Returns the port.

    On failure (``zmq.ZMQError``, e.g. the port is taken) ``sock`` is closed before the error
    propagates: the caller's half-built object holds no socket.
    """
    hosts = scope.bind_hosts()
    first, rest = hosts[0], hosts[1:]
    try:
        if port:
            sock.bind(f"tcp://{first}:{port}")
        else:
            port = sock.bind_to_random_port(f"tcp://{first}")
        for host in rest:
            sock.bind(f"tcp://{host}:{port}")
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return port
