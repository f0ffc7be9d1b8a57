"""I/O layer: small helpers to create and bind ZeroMQ sockets within a network scope."""

from __future__ import annotations

import os
from typing import Any

import zmq

from constellation.net.interfaces import NetworkScope

__all__ = [
    "BUILTIN_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_MESSAGE_SIZE_ENV",
    "bind_in_scope",
    "max_message_size",
]

#: Environment variable overriding :data:`DEFAULT_MAX_MESSAGE_SIZE` (bytes, a positive integer;
#: read once when this module is imported, i.e. at process start).
MAX_MESSAGE_SIZE_ENV = "CONSTELLATION_MAX_MESSAGE_SIZE"
#: Built-in limit used when the environment variable is unset or invalid: 16 MiB.
BUILTIN_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def max_message_size(environ: Any = None) -> int:
    """The limit for control/heartbeat/monitoring sockets from ``CONSTELLATION_MAX_MESSAGE_SIZE``.

    Unset, empty, non-numeric or non-positive values fall back to 16 MiB (never to "unlimited").
    """
    raw = (os.environ if environ is None else environ).get(MAX_MESSAGE_SIZE_ENV, "").strip()
    try:
        value = int(raw)
    except ValueError:
        return BUILTIN_MAX_MESSAGE_SIZE
    return value if value > 0 else BUILTIN_MAX_MESSAGE_SIZE


#: Largest message accepted on control/heartbeat/monitoring sockets (bytes). Larger input makes
#: ZeroMQ drop the connection of the sender instead of allocating memory for it. Configurable
#: with the environment variable ``CONSTELLATION_MAX_MESSAGE_SIZE`` (bytes).
DEFAULT_MAX_MESSAGE_SIZE = max_message_size()


def bind_in_scope(sock: zmq.Socket[Any], scope: NetworkScope, port: int = 0) -> int:
    """Bind ``sock`` on every address of ``scope``; port 0 picks a free port. Returns the port."""
    hosts = scope.bind_hosts()
    first, rest = hosts[0], hosts[1:]
    if port:
        sock.bind(f"tcp://{first}:{port}")
    else:
        port = sock.bind_to_random_port(f"tcp://{first}")
    for host in rest:
        sock.bind(f"tcp://{host}:{port}")
    return port
