"""Streamers find receivers through the live service's mDNS type alone, and lose them when the
service is withdrawn. A tap in this process, announced like a receiver announces it (no
control service at all, so the get_live_endpoint command cannot be what finds it)."""

from __future__ import annotations

import uuid

import pytest
import zmq

from constellation.live import Streamer
from constellation.live.hooks import LIVE_MDNS_TYPE
from constellation.live.tap import LiveTap
from constellation.net.interfaces import NetworkScope
from constellation.net.mdns import MdnsDiscovery
from constellation.protocol.cdtp2 import DataRecord, encode_data_frame, make_bor
from tests.helpers import LOOPBACK, wait_for

SCOPE = NetworkScope((LOOPBACK,))
RECEIVER = "DevNullReceiver.only_mdns"


@pytest.mark.parametrize("discovery", ["mdns", "both"])
def test_mdns_streamer_finds_the_live_type_and_loses_it_when_withdrawn(discovery: str) -> None:
    group = f"live_mdns_{uuid.uuid4().hex[:8]}"
    tap = LiveTap(zmq.Context.instance(), SCOPE, RECEIVER)
    announcer = MdnsDiscovery(group, RECEIVER, SCOPE)
    other = MdnsDiscovery(f"{group}_other", "DevNullReceiver.elsewhere", SCOPE)
    streamer = None
    try:
        announcer.announce_type(LIVE_MDNS_TYPE, tap.port, {"lossless": str(tap.lossless_port)})
        other.announce_type(LIVE_MDNS_TYPE, tap.port, {"lossless": str(tap.lossless_port)})
        streamer = Streamer(group, interface=LOOPBACK, discovery=discovery)
        wait_for(lambda: streamer.receivers == [RECEIVER], 15, what="the mDNS live service")
        wait_for(lambda: tap.service() or tap.subscribers == 1, 10, what="the subscription")
        tap.publish("BOR", "Tx.a", "run_1", make_bor("Tx.a", {}, {}).encode()[0])
        data = encode_data_frame("Tx.a", [DataRecord(1, {}, [b"abc"]), DataRecord(2, {}, [b"d"])])
        tap.publish("DATA", "Tx.a", "run_1", data, 1, 2)
        counts: dict[str, int] = {}

        def got_both() -> bool:
            frame = streamer.read(0.2)
            if frame is not None:
                for sender, n in frame.counts().items():
                    counts[sender] = counts.get(sender, 0) + n
            return counts.get("Tx.a") == 2

        wait_for(got_both, 10, what="the records through the found endpoint")
        announcer.close()  # withdraws the live service (a goodbye)
        wait_for(lambda: streamer.receivers == [], 15, what="the withdrawal")
    finally:
        if streamer is not None:
            streamer.close()
        announcer.close()
        other.close()
        tap.close()
