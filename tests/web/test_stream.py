"""The SSE hub: numbering, bounded per-client queues, resume after a reconnect."""

from __future__ import annotations

import asyncio
import json

from controller.web.stream import Client, Event, Hub, format_event


def parse(chunk: bytes) -> tuple[int, str, object]:
    lines = dict(line.split(": ", 1) for line in chunk.decode().strip().split("\n"))
    return int(lines["id"]), lines["event"], json.loads(lines["data"])


def test_format_event() -> None:
    assert format_event(Event(7, "sat", {"a": 1})) == b'id: 7\nevent: sat\ndata: {"a":1}\n\n'


def test_client_queue_is_bounded_and_asks_for_a_snapshot() -> None:
    client = Client(capacity=3)
    for i in range(10):
        client.put(Event(i, "log", i))
    assert [e.id for e in client.queue] == [7, 8, 9]
    assert client.resync and client.dropped == 7


def test_since_replays_or_reports_a_gap() -> None:
    hub = Hub(history=5)
    hub.publish([("log", i) for i in range(8)])  # ids 1..8, history keeps 4..8
    assert [e.id for e in hub.since(5) or []] == [6, 7, 8]
    assert hub.since(8) == []
    assert hub.since(1) is None  # 2 and 3 are forgotten: a snapshot is needed


def test_stream_snapshot_live_events_and_resume() -> None:
    async def scenario() -> None:
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        hub.publish([("log", "before")])
        gen = hub.stream(lambda: {"snap": True}, None, keepalive=5)
        assert parse(await gen.__anext__()) == (1, "snapshot", {"snap": True})
        hub.publish([("sat", {"name": "a"}), ("log", "x")])
        assert parse(await gen.__anext__()) == (2, "sat", {"name": "a"})
        assert parse(await gen.__anext__()) == (3, "log", "x")
        await gen.aclose()
        assert hub.clients == 0
        # A page that reconnects with Last-Event-ID 2 gets event 3 again and then news.
        again = hub.stream(lambda: {"snap": True}, 2, keepalive=5)
        assert parse(await again.__anext__()) == (3, "log", "x")
        hub.publish([("log", "y")])
        assert parse(await again.__anext__()) == (4, "log", "y")
        await again.aclose()

    asyncio.run(scenario())


def test_a_stuck_reader_gets_one_snapshot_not_a_growing_queue() -> None:
    async def scenario() -> None:
        hub = Hub(capacity=10)
        hub.bind(asyncio.get_running_loop())
        gen = hub.stream(lambda: "snap", None, keepalive=5)
        await gen.__anext__()
        for i in range(1000):
            hub.publish([("log", i)])
        await asyncio.sleep(0)  # let the loop deliver the handed-over events
        (client,) = hub._clients
        assert len(client.queue) <= 10 and client.dropped >= 990
        event_id, kind, data = parse(await gen.__anext__())
        assert (event_id, kind, data) == (1000, "snapshot", "snap")
        hub.publish([("log", "next")])
        assert parse(await gen.__anext__())[2] == "next"
        await gen.aclose()

    asyncio.run(scenario())
