"""I/O layer: the CSCP1 command server (a REP socket served by the event loop).

Every request gets exactly one reply: frames that do not decode are answered with verb type
ERROR and logged, so a REP socket never wedges and the satellite keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE, bind_in_scope
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = ["CommandServer"]

log = logging.getLogger("constellation.net.cscp")

RequestHandler = Callable[[CSCP1Message], CSCP1Message]


class CommandServer:
    """Serve CSCP1 requests on a REP socket; ``handler`` maps a request to its reply."""

    def __init__(
        self,
        loop: EventLoop,
        scope: NetworkScope,
        own_name: str,
        handler: RequestHandler,
        port: int = 0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._loop = loop
        self._own_name = own_name
        self._handler = handler
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        self.port = bind_in_scope(self._sock, scope, port)
        self.malformed_count = 0
        loop.add_socket(self._sock, self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            reply = self._reply_for(frames)
            try:
                out = reply.encode()
            except Exception as exc:  # e.g. a handler returned bytes inside a tag map
                log.exception("reply to '%s' could not be encoded", reply.verb)
                text = f"Reply could not be encoded: {exc}"
                out = CSCP1Message(self._own_name, CSCPType.ERROR, text).encode()
            self._sock.send_multipart(out)

    def _reply_for(self, frames: list[bytes]) -> CSCP1Message:
        try:
            request = CSCP1Message.decode(frames)
        except DecodeError as exc:
            self.malformed_count += 1
            log.warning("malformed command message dropped: %s", exc)
            return CSCP1Message(self._own_name, CSCPType.ERROR, f"Malformed message: {exc}")
        try:
            return self._handler(request)
        except Exception as exc:  # a reply must always go out
            log.exception("command handler failed for '%s'", request.verb)
            text = f"{type(exc).__name__} while handling '{request.verb}': {exc}"
            return CSCP1Message(self._own_name, CSCPType.ERROR, text)

    def close(self) -> None:
        def shutdown() -> None:
            self._loop.remove_socket(self._sock)
            self._sock.close(linger=0)

        self._loop.run_sync(shutdown)
