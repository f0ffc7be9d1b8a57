"""PeerSubscriptions: messages of a turn go to on_frames, then on_batch_end once per turn."""

from __future__ import annotations

import threading
from typing import Any

import zmq

from constellation.net.loop import EventLoop
from constellation.net.subscriptions import PeerSubscriptions
from tests.helpers import LOOPBACK, wait_for


def test_batch_end_follows_the_frames_of_its_batch() -> None:
    ctx = zmq.Context.instance()
    loop = EventLoop(ctx, name="subs-test")
    loop.start()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port(f"tcp://{LOOPBACK}")
    log: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def on_frames(key: str, frames: list[bytes]) -> None:
        with lock:
            log.append(("frames", key, len(frames)))

    def on_batch_end(key: str) -> None:
        with lock:
            log.append(("end", key, 0))

    subs = PeerSubscriptions(loop, on_frames, on_batch_end=on_batch_end, batch=4)
    try:
        loop.run_sync(lambda: subs.set_topics(["T"]))
        assert loop.run_sync(lambda: subs.connect("peer", f"tcp://{LOOPBACK}:{port}"))

        def received() -> int:
            with lock:
                return sum(kind == "frames" for kind, _, _ in log)

        # Slow joiner: publish until the subscription is in place.
        wait_for(lambda: pub.send_multipart([b"T", b"probe"]) or received() > 0, 5, 0.01)
        for _ in range(10):
            pub.send_multipart([b"T", b"x"])
        wait_for(lambda: received() >= 11, 5, what="ten more messages")
        wait_for(lambda: log[-1][0] == "end", 5, what="the batch end")
        with lock:
            entries = list(log)
        run = 0
        for kind, key, size in entries:
            assert key == "peer"
            if kind == "frames":
                assert size == 2
                run += 1
                assert run <= 4, "a batch longer than its bound"
            else:
                run = 0
    finally:
        loop.run_sync(subs.close)
        pub.close()
        loop.stop()


def _inproc_pair(loop: EventLoop, subs: PeerSubscriptions, name: str) -> zmq.Socket[Any]:
    """A PUB on inproc followed by ``subs`` as peer "peer", subscription in place.

    Over inproc a message sent is queued on the subscriber's pipe at once: sent from the loop
    thread, it waits there unread until somebody reads the socket.
    """
    pub = loop.context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"inproc://{name}")
    loop.run_sync(lambda: subs.set_topics(["T"]))
    assert loop.run_sync(lambda: subs.connect("peer", f"inproc://{name}"))
    return pub


def test_drain_hands_on_a_departing_peers_queued_messages_before_drop() -> None:
    ctx = zmq.Context.instance()
    loop = EventLoop(ctx, name="drain-test")
    loop.start()
    got: list[bytes] = []
    ends: list[str] = []
    subs = PeerSubscriptions(
        loop, lambda key, frames: got.append(frames[1]), on_batch_end=ends.append, batch=4
    )
    pub = _inproc_pair(loop, subs, "drain-test")

    def joined() -> None:
        """Slow joiner: publish until the subscription is in place, then until the loop read
        every probe (messages of one pipe keep their order): nothing is queued after this."""
        wait_for(lambda: pub.send_multipart([b"T", b"probe"]) or b"probe" in got, 5, 0.01)
        pub.send_multipart([b"T", b"sync"])
        wait_for(lambda: b"sync" in got, 5, 0.01, what="the probes to be read")

    try:
        joined()

        def depart(count: int) -> tuple[list[bytes], list[str]]:
            """In the loop thread (nothing reads meanwhile): queue ``count`` messages, then
            do what a departure does: drain, then drop."""
            got.clear()
            ends.clear()
            for n in range(count):
                pub.send_multipart([b"T", b"last %d" % n])
            subs.drain("peer")
            subs.drop("peer")
            return list(got), list(ends)

        last, batch_ends = loop.run_sync(lambda: depart(3))
        assert last == [b"last 0", b"last 1", b"last 2"]  # dropping first would lose them
        assert batch_ends == ["peer"]
        assert subs.peers == {}
        loop.run_sync(lambda: subs.drain("peer"))  # a peer no longer followed: nothing happens

        # One batch at most: a flooding peer cannot hold up its own departure.
        assert loop.run_sync(lambda: subs.connect("peer", "inproc://drain-test"))
        got.clear()
        joined()
        last, batch_ends = loop.run_sync(lambda: depart(6))
        assert last == [b"last 0", b"last 1", b"last 2", b"last 3"] and batch_ends == ["peer"]
    finally:
        loop.run_sync(subs.close)
        pub.close()
        loop.stop()
