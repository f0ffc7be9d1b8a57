"""PeerSubscriptions: messages of a turn go to on_frames, then on_batch_end once per turn."""

from __future__ import annotations

import threading

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
