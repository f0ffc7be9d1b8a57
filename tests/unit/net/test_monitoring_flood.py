"""A subscription flood on the monitoring XPUB is read in bounded batches."""

from __future__ import annotations

from typing import Any

import zmq

from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.monitoring import MonitoringPublisher
from constellation.protocol.cmdp1 import CMDP1Log


class _EndlessSubscriptions:
    """Stands in for the XPUB socket of a peer that never stops (un)subscribing."""

    def __init__(self, limit: int) -> None:
        self.reads = 0
        self.limit = limit

    def recv_multipart(self, flags: int = 0) -> list[bytes]:
        self.reads += 1
        if self.reads > self.limit:
            raise AssertionError("the subscription handler never yields to the loop")
        return [(b"\x01" if self.reads % 2 else b"\x00") + b"LOG/INFO/T%d" % self.reads]

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def test_subscription_handler_reads_a_bounded_batch() -> None:
    lp = EventLoop(zmq.Context.instance(), name="flood")  # not started: calls run inline
    publisher = MonitoringPublisher(lp, NetworkScope(("127.0.0.1",)), "Test.flood")
    real = publisher._sock
    fake = _EndlessSubscriptions(limit=100_000)
    publisher._sock = fake  # type: ignore[assignment]
    try:
        publisher._on_subscription()
        assert 0 < fake.reads <= 1000
    finally:
        publisher._sock = real
        publisher.close()
        lp.stop()


def test_publish_is_droppable_monitoring_traffic() -> None:
    lp = EventLoop(zmq.Context.instance(), name="mon-drop", max_droppable=3)
    publisher = MonitoringPublisher(lp, NetworkScope(("127.0.0.1",)), "Test.drop")
    try:
        for i in range(10):
            publisher.publish(CMDP1Log("Test.drop", "INFO", f"line {i}", "T", {}))
        assert lp.dropped_calls == 7
    finally:
        publisher.close()
        lp.stop()
