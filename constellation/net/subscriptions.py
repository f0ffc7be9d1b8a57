"""I/O layer: one SUB socket per publishing peer, all with the same topic set.

A single SUB socket connected to many publishers is exposed to a libzmq 4.3 fair-queueing
defect: when one publisher's pipe terminates (the peer left, was killed or was disconnected)
while a multi-frame message of another publisher is half read, the next frame is looked up in
the wrong pipe and libzmq aborts the process (``Assertion failed: !_more (src/fq.cpp)``).
:class:`PeerSubscriptions` gives every peer a socket of its own, so a terminated pipe can only
cut its own message short; that socket is then replaced. A departed peer's socket is closed,
never disconnected.

Every method runs in the loop thread (use ``loop.call_soon`` / ``loop.run_sync`` from others).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from constellation.net.loop import EventLoop
from constellation.net.sockets import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["BatchEndCallback", "FramesCallback", "PeerSubscriptions"]

log = logging.getLogger("constellation.net.subscriptions")

#: Messages read from one socket per wake-up before other loop work gets a turn.
_BATCH = 1000

#: ``on_frames(peer_key, frames)``: one complete multipart message of one peer.
FramesCallback = Callable[[str, list[bytes]], None]
#: ``on_batch_end(peer_key)``: the messages read from one peer's socket in one turn were handed
#: to ``on_frames`` (to act once per batch rather than once per message).
BatchEndCallback = Callable[[str], None]


@dataclass
class _Peer:
    endpoint: str
    sock: zmq.Socket[Any]


class PeerSubscriptions:
    """SUB sockets keyed by peer, sharing one subscription set; loop thread only."""

    def __init__(
        self,
        loop: EventLoop,
        on_frames: FramesCallback,
        *,
        on_cut_short: Callable[[str], None] | None = None,
        on_batch_end: BatchEndCallback | None = None,
        rcvhwm: int = 100_000,
        batch: int = _BATCH,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._loop = loop
        self._on_frames = on_frames
        self._on_cut_short = on_cut_short
        self._on_batch_end = on_batch_end
        self._rcvhwm = rcvhwm
        self._batch = batch
        self._max_message_size = max_message_size
        self._peers: dict[str, _Peer] = {}
        self._topics: set[str] = set()
        self._closed = False

    @property
    def peers(self) -> dict[str, str]:
        """Peer key -> endpoint of every connected peer."""
        return {key: peer.endpoint for key, peer in self._peers.items()}

    def endpoint(self, key: str) -> str | None:
        """The endpoint ``key`` is connected to, or ``None``."""
        peer = self._peers.get(key)
        return None if peer is None else peer.endpoint

    def set_topics(self, topics: Iterable[str]) -> None:
        """Subscribe every socket, present and future, to exactly ``topics``."""
        new = set(topics)
        old, self._topics = self._topics, new
        for peer in self._peers.values():
            _apply(peer.sock, old, new)

    def connect(self, key: str, endpoint: str) -> bool:
        """Follow ``key`` at ``endpoint`` (replacing another endpoint); ``False`` on failure."""
        if self._closed:
            return False
        old = self._peers.get(key)
        if old is not None and old.endpoint == endpoint:
            return True
        self.drop(key)
        sock: zmq.Socket[Any] = self._loop.context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_message_size)
        sock.setsockopt(zmq.RCVHWM, self._rcvhwm)
        _apply(sock, set(), self._topics)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            log.warning("cannot connect to %s at %s: %s", key, endpoint, exc)
            return False
        self._peers[key] = _Peer(endpoint, sock)
        self._loop.add_socket(sock, lambda: self._on_readable(key, sock))
        return True

    def drain(self, key: str) -> None:
        """Hand on what ``key``'s socket already holds (one batch at most), e.g. before a
        departed peer is dropped: its last messages are read, not thrown away."""
        peer = self._peers.get(key)
        if peer is None:
            return
        try:
            self._read_batch(key, peer.sock)
        finally:
            if self._on_batch_end is not None:
                self._on_batch_end(key)

    def drop(self, key: str) -> str | None:
        """Stop following ``key``; returns the endpoint it was connected to, if any."""
        peer = self._peers.pop(key, None)
        if peer is None:
            return None
        self._loop.remove_socket(peer.sock)
        peer.sock.close(linger=0)
        return peer.endpoint

    def close(self) -> None:
        """Close every socket; the object accepts no more peers."""
        self._closed = True
        for key in list(self._peers):
            self.drop(key)

    def _on_readable(self, key: str, sock: zmq.Socket[Any]) -> None:
        try:
            if self._read_batch(key, sock):
                self._loop.call_soon(self._on_readable, key, sock)  # more may wait: come back
        finally:
            if self._on_batch_end is not None:
                self._on_batch_end(key)

    def _read_batch(self, key: str, sock: zmq.Socket[Any]) -> bool:
        """Hand up to ``batch`` messages to ``on_frames``; True if the batch was full."""
        for _ in range(self._batch):
            peer = self._peers.get(key)
            if peer is None or peer.sock is not sock:
                return False  # dropped or replaced meanwhile
            try:
                frames = [sock.recv(zmq.NOBLOCK)]
            except zmq.Again:
                return False
            try:
                while sock.getsockopt(zmq.RCVMORE):
                    frames.append(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                # The pipe ended inside a message: this socket is unusable from now on.
                self._replace(key, peer.endpoint)
                return False
            self._on_frames(key, frames)
        return True

    def _replace(self, key: str, endpoint: str) -> None:
        if self._on_cut_short is not None:
            with contextlib.suppress(Exception):
                self._on_cut_short(key)
        self.drop(key)
        self.connect(key, endpoint)


def _apply(sock: zmq.Socket[Any], old: set[str], new: set[str]) -> None:
    for topic in sorted(old - new):
        sock.setsockopt(zmq.UNSUBSCRIBE, topic.encode())
    for topic in sorted(new - old):
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
