"""MissionControl web: one server-sent event stream per browser, bounded, resumable.

:class:`Hub` numbers every event, keeps the last ``history`` of them (so a page that reconnects
with ``Last-Event-ID`` gets what it missed) and hands each to every connected
:class:`Client`. A client's queue is bounded: when a browser stops reading, the oldest events
are dropped and the client is marked to receive a fresh ``snapshot`` instead, so a stuck
browser never grows the server's memory. ``publish`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Client", "Event", "Hub", "format_event"]


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: Any


def format_event(event: Event) -> bytes:
    """The SSE wire form: ``id``, ``event`` and one ``data`` line of JSON."""
    body = json.dumps(event.data, separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Client:
    """One connected browser: a bounded queue and a resync mark."""

    capacity: int
    queue: deque[Event] = field(default_factory=deque)
    resync: bool = False
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, event: Event) -> None:
        if len(self.queue) >= self.capacity:
            self.queue.popleft()
            self.dropped += 1
            self.resync = True  # what it missed is replaced by a snapshot
        self.queue.append(event)
        self.wake.set()


class Hub:
    """Fan-out of numbered events to bounded per-client queues."""

    def __init__(self, history: int = 2000, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._history: deque[Event] = deque(maxlen=history)
        self._lock = threading.Lock()
        self._next = 1
        self._clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def last_id(self) -> int:
        return self._next - 1

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that serves the clients (publish hands events over to it)."""
        self._loop = loop

    def publish(self, events: list[tuple[str, Any]]) -> None:
        """Number ``events`` and queue them for every client; thread-safe."""
        if not events:
            return
        with self._lock:
            numbered = []
            for kind, data in events:
                numbered.append(Event(self._next, kind, data))
                self._next += 1
            self._history.extend(numbered)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, numbered)
        except RuntimeError:  # loop closed meanwhile
            pass

    def _deliver(self, events: list[Event]) -> None:
        for client in list(self._clients):
            for event in events:
                client.put(event)

    def since(self, last_id: int) -> list[Event] | None:
        """Events after ``last_id``, or None if some of them were already forgotten."""
        with self._lock:
            if last_id >= self._next - 1:
                return []
            if not self._history or self._history[0].id > last_id + 1:
                return None
            return [e for e in self._history if e.id > last_id]

    def connect(self) -> Client:
        client = Client(self.capacity)
        self._clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)

    async def stream(
        self,
        snapshot: Callable[[], Any],
        last_id: int | None,
        keepalive: float = 15.0,
        retry_ms: int = 1000,
    ) -> AsyncIterator[bytes]:
        """The SSE body of one client: a snapshot or the missed events, then live events.

        The first chunk also tells the browser to reconnect ``retry_ms`` after a drop.
        """
        client = self.connect()
        try:
            missed = None if last_id is None else self.since(last_id)
            seen = 0
            retry = f"retry: {int(retry_ms)}\n".encode()
            if missed is None:
                seen = self.last_id
                yield retry + format_event(Event(seen, "snapshot", snapshot()))
            else:
                for event in missed:
                    seen = event.id
                    yield retry + format_event(event)
                    retry = b""
                if retry:
                    yield retry + b": resumed\n\n"
            while True:
                if not client.queue:
                    client.wake.clear()
                    try:
                        await asyncio.wait_for(client.wake.wait(), keepalive)
                    except asyncio.TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                if client.resync:
                    client.resync = False
                    client.queue.clear()
                    seen = self.last_id
                    yield format_event(Event(seen, "snapshot", snapshot()))
                    continue
                while client.queue:
                    event = client.queue.popleft()
                    if event.id > seen:  # not already part of a snapshot or the replay
                        seen = event.id
                        yield format_event(event)
        finally:
            self.disconnect(client)
