"""A Streamer with no receiver to read from waits instead of spinning (zmq.Poller with no
sockets returns at once: the reader thread once used most of a core doing nothing)."""

from __future__ import annotations

import threading
import time
import uuid

from constellation.live import Streamer

LOOPBACK = "127.0.0.1"


def test_streamer_without_receivers_stays_idle() -> None:
    streamer = Streamer(f"idle_{uuid.uuid4().hex[:8]}", interface=LOOPBACK)
    try:
        stop = threading.Event()
        start = time.process_time()
        stop.wait(1.0)  # the time span over which the streamer's CPU use is measured
        used = time.process_time() - start
    finally:
        streamer.close()
    # Spinning costs about 0.8 s of CPU per second; waiting costs a few milliseconds.
    assert used < 0.3, f"an idle Streamer used {used:.2f} s of CPU in 1 s"
