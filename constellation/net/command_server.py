"""I/O layer: the CSCP1 command server (a ROUTER socket served by the event loop).

Wire-compatible with REQ clients (Constellation's controllers) and DEALER clients that send the
empty delimiter frame: a request arrives as ``[routing id..., b"", CSCP frames...]`` and its
reply goes back with the same envelope. ROUTER, unlike REP, lets replies go out in any order:
a handler may return a :class:`~concurrent.futures.Future` and the loop keeps serving other
requests until it completes. Every request with an envelope gets exactly one reply: frames that
do not decode, a failing handler or an unencodable reply are answered with verb type ERROR.
Messages without the delimiter frame are dropped (as a REP socket would) and counted.

A handler may ask for work to happen *after* its reply is on its way with
:meth:`CommandServer.after_reply` (``shutdown`` does: reply first, then close), an explicit
ordering instead of a timer. :meth:`CommandServer.close` lingers briefly so that replies already
handed to ZeroMQ still go out.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from constellation.errors import DecodeError
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.ratelimit import RateLimitedWarning
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE, bind_in_scope
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = ["CommandServer", "RequestHandler", "split_envelope"]

log = logging.getLogger("constellation.net.cscp")

RequestHandler = Callable[[CSCP1Message], "CSCP1Message | Future[CSCP1Message]"]

#: Requests read per wake-up, so that a flood cannot starve timers and other sockets.
_BATCH = 64
#: Milliseconds a closed command socket keeps trying to deliver replies already sent.
_CLOSE_LINGER_MS = 500


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """(envelope including the empty delimiter, body) of a ROUTER message; None without one."""
    for index, frame in enumerate(frames):
        if not frame:
            if index == 0:
                return None  # a routing id is never empty
            return frames[: index + 1], frames[index + 1 :]
    return None


class CommandServer:
    """Serve CSCP1 requests on a ROUTER socket; ``handler`` maps a request to its reply."""

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
        self._sock: zmq.Socket[Any] = loop.context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        self.port = bind_in_scope(self._sock, scope, port)
        self.malformed_count = 0
        #: Replies still being computed (asynchronous handlers).
        self.pending_replies = 0
        #: Replies handed to ZeroMQ.
        self.replies_sent = 0
        self._after: list[Callable[[], Any]] | None = None
        self._no_envelope = RateLimitedWarning(log)
        loop.add_socket(self._sock, self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(_BATCH):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            split = split_envelope(frames)
            if split is None:
                self.malformed_count += 1
                self._no_envelope("command message without delimiter frame dropped")
                continue
            envelope, body = split
            self._after = after = []
            try:
                reply = self._reply_for(body)
            finally:
                self._after = None
            if isinstance(reply, Future):
                self.pending_replies += 1
                callback = functools.partial(self._completed, envelope, after)
                reply.add_done_callback(callback)
            else:
                self._send(envelope, reply)
                self._run_after(after)

    def after_reply(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` once the reply to the request being handled was sent.

        Outside a handler of this server (another thread, no request) there is no reply to wait
        for: ``fn`` runs at once.
        """
        if self._after is None or not self._loop.in_loop_thread():
            fn()
        else:
            self._after.append(fn)

    def _run_after(self, after: list[Callable[[], Any]]) -> None:
        for fn in after:
            try:
                fn()
            except Exception:
                log.exception("post-reply action failed")

    def _reply_for(self, frames: list[bytes]) -> CSCP1Message | Future[CSCP1Message]:
        try:
            request = CSCP1Message.decode(frames)
        except DecodeError as exc:
            self.malformed_count += 1
            log.warning("malformed command message dropped: %s", exc)
            return self._error(f"Malformed message: {exc}")
        try:
            return self._handler(request)
        except Exception as exc:  # a reply must always go out
            log.exception("command handler failed for '%s'", request.verb)
            return self._error(f"{type(exc).__name__} while handling '{request.verb}': {exc}")

    def _completed(
        self, envelope: list[bytes], after: list[Callable[[], Any]], done: Future[CSCP1Message]
    ) -> None:
        """Any thread: hand the completed reply to the loop thread."""
        self._loop.call_soon(self._send_later, envelope, after, done)

    def _send_later(
        self, envelope: list[bytes], after: list[Callable[[], Any]], done: Future[CSCP1Message]
    ) -> None:
        """Loop thread: send the reply of an asynchronous handler."""
        self.pending_replies -= 1
        if done.cancelled():
            reply = self._error("Command cancelled: the satellite is shutting down")
        elif (exc := done.exception()) is not None:
            log.error("command handler failed: %s: %s", type(exc).__name__, exc)
            reply = self._error(f"{type(exc).__name__} while handling the command: {exc}")
        else:
            reply = done.result()
        self._send(envelope, reply)
        self._run_after(after)

    def _send(self, envelope: list[bytes], reply: CSCP1Message) -> None:
        if self._sock.closed:
            return
        try:
            out = reply.encode()
        except Exception as exc:  # e.g. a handler returned bytes inside a tag map
            log.exception("reply to '%s' could not be encoded", reply.verb)
            out = self._error(f"Reply could not be encoded: {exc}").encode()
        try:
            # A ROUTER never blocks: a reply to a peer that left (or is full) is dropped.
            self._sock.send_multipart([*envelope, *out], zmq.NOBLOCK)
            self.replies_sent += 1
        except zmq.ZMQError as exc:
            log.warning("reply could not be sent: %s", exc)

    def _error(self, text: str) -> CSCP1Message:
        return CSCP1Message(self._own_name, CSCPType.ERROR, text)

    def close(self) -> None:
        def shutdown() -> None:
            self._loop.remove_socket(self._sock)
            self._sock.close(linger=_CLOSE_LINGER_MS)  # replies already sent still go out

        self._loop.run_sync(shutdown)
