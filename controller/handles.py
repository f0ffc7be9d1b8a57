"""Controller layer: one CSCP connection per satellite and the replies it gets.

:class:`SatelliteHandle` sends one request at a time over a REQ socket (re-created after a
timeout) and returns a :class:`Reply`; an undecodable reply becomes an ERROR reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = ["Reply", "SatelliteHandle", "ask_quietly"]


@dataclass(frozen=True)
class Reply:
    """A CSCP reply: verb type, verb text, payload and tags."""

    msg_type: CSCPType
    verb: str
    payload: Any = None
    tags: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.msg_type is CSCPType.SUCCESS

    def __str__(self) -> str:
        return f"{self.msg_type.name}: {self.verb}"


class SatelliteHandle:
    """A connection to one satellite's command service."""

    def __init__(self, name: str, endpoint: str, controller_name: str, context: Any) -> None:
        self.name = name
        self.type_name, _, self.sat_name = name.partition(".")
        self.endpoint = endpoint
        self._controller_name = controller_name
        self._context = context
        self._lock = threading.Lock()
        self._sock: Any = None

    def _socket(self) -> Any:
        if self._sock is None:
            self._sock = self._context.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.endpoint)
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def command(self, verb: str, payload: Any = NO_PAYLOAD, timeout: float = 5.0) -> Reply:
        """Send ``verb`` (with an optional payload) and wait for the reply."""
        request = CSCP1Message(self._controller_name, CSCPType.REQUEST, verb, payload)
        deadline = time.monotonic() + timeout
        # One request at a time per connection; waiting for another caller's reply counts
        # against this call's timeout (a hung satellite must not stack up waits).
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"{self.name} did not answer '{verb}' within {timeout:g} s")
        try:
            sock = self._socket()
            sock.send_multipart(request.encode())
            remaining = max(0.0, deadline - time.monotonic())
            if not sock.poll(int(remaining * 1000)):
                self._reset()  # a REQ socket without reply cannot be reused
                raise TimeoutError(f"{self.name} did not answer '{verb}' within {timeout:g} s")
            frames = sock.recv_multipart()
        finally:
            self._lock.release()
        try:
            reply = CSCP1Message.decode(frames)
        except DecodeError as exc:
            return Reply(CSCPType.ERROR, f"undecodable reply: {exc}")
        payload = None if reply.payload is NO_PAYLOAD else reply.payload
        return Reply(reply.msg_type, reply.verb, payload, dict(reply.tags))

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __repr__(self) -> str:
        return f"<SatelliteHandle {self.name} at {self.endpoint}>"


def ask_quietly(
    satellites: Mapping[str, SatelliteHandle], name: str, command: str, timeout: float
) -> Reply | None:
    """``command`` to satellite ``name`` for background bookkeeping: None if it is gone or does
    not answer (logged at debug: such questions are asked again later or are optional)."""
    handle = satellites.get(name)
    if handle is None:
        return None
    try:
        return handle.command(command, timeout=timeout)
    except Exception as exc:
        logging.getLogger("constellation.controller").debug(
            "%s did not answer %s: %s", name, command, exc
        )
        return None
