"""Standalone fuzz campaign against a live satellite's command, heartbeat and monitoring sockets.

Starts one ``SatelliteRandomTransmitter`` on 127.0.0.1, then for ``--seconds`` sends random
and malformed CSCP1 requests (garbage, truncated frames, wrong protocol identifiers, wrong
types, occasional oversized frames) to its command socket over a raw DEALER, and junk to its
heartbeat and monitoring XPUB sockets over a raw XSUB. Prints messages sent, replies, crashes
(must be 0: the process is alive and answers ``get_state`` at the end) and the process RSS
before and after.

    python bench/fuzz.py [--seconds 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq
from _procs import LOOPBACK, start, unique_group, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from constellation.protocol.chirp import ServiceId
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from controller import Controller

NAME = "RandomTransmitter.fuzz"


def random_request(rng: random.Random) -> list[bytes]:
    valid = CSCP1Message("fuzzer", CSCPType.REQUEST, rng.choice(["get_state", "launch", "x"]))
    header = valid.encode()[0]
    kind = rng.randrange(8)
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 512))]
    if kind == 1:
        return [header[: rng.randrange(len(header))]]
    if kind == 2:
        return [header.replace(b"CSCP", rng.choice([b"CHP\x01", b"CMDP", b"XXXX"]))]
    if kind == 3:
        value = rng.choice([42, -1, 1.5, None, [1, 2], {"a": 1}, "", b"\x00"])
        return [msgpack.packb("CSCP\x01") + msgpack.packb(value) + msgpack.packb(value)]
    if kind == 4:
        return [header, rng.randbytes(rng.randrange(0, 64))]
    if kind == 5:
        return [header, b"\xc1"]
    if kind == 6:
        mutated = bytearray(header)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        return [bytes(mutated)]
    return [header, msgpack.packb({"x": 1}), msgpack.packb(rng.randbytes(8))]


def answers(endpoint: str) -> str:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(CSCP1Message("fuzzer", CSCPType.REQUEST, "get_state").encode())
        return CSCP1Message.decode(sock.recv_multipart()).verb if sock.poll(5000) else ""
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--big-every", type=int, default=2000, help="one 20 MB frame every N")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    group = unique_group("fuzz")
    proc = start("SatelliteRandomTransmitter", "fuzz", group, "DEBUG")
    ctx = zmq.Context.instance()
    ctl = Controller(group, interface=LOOPBACK)
    ctl.discovery.add_listener([ServiceId.MONITORING], lambda event, service: None)
    sent = replies = no_reply = junk = 0
    try:
        ctl.await_satellites([NAME], timeout=20)

        def endpoints() -> dict[ServiceId, str]:
            known = {s.service: s.endpoint for s in ctl.discovery.known() if s.name == NAME}
            return known if len(known) >= 3 else {}

        eps: dict[ServiceId, str] = wait_for(endpoints, 20, what="services")
        ps = psutil.Process(proc.pid)
        time.sleep(0.5)
        rss_before = ps.memory_info().rss
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(eps[ServiceId.CONTROL])
        xsubs: list[Any] = []
        for service in (ServiceId.HEARTBEAT, ServiceId.MONITORING):
            xsub = ctx.socket(zmq.XSUB)
            xsub.setsockopt(zmq.LINGER, 0)
            xsub.connect(eps[service])
            xsubs.append(xsub)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if sent and sent % args.big_every == 0:
                dealer.send_multipart([b"", b"\x00" * (20 * 2**20)])  # dropped by MAXMSGSIZE
                dealer.close()
                dealer = ctx.socket(zmq.DEALER)
                dealer.setsockopt(zmq.LINGER, 0)
                dealer.connect(eps[ServiceId.CONTROL])
            dealer.send_multipart([b"", *random_request(rng)])
            sent += 1
            if dealer.poll(2000):
                dealer.recv_multipart()
                replies += 1
            else:
                no_reply += 1
            for xsub in xsubs:  # junk that is not a subscription (first byte >= 2)
                xsub.send(bytes([rng.randrange(2, 256)]) + rng.randbytes(rng.randrange(64)))
                junk += 1
            if sent % 500 == 0 and proc.proc.poll() is not None:
                break
        dealer.close()
        for xsub in xsubs:
            xsub.close()
        alive = proc.proc.poll() is None and answers(eps[ServiceId.CONTROL]) == "NEW"
        rss_after = ps.memory_info().rss if proc.proc.poll() is None else 0
    finally:
        ctl.close()
        proc.stop()
    print(f"seconds={args.seconds:g} seed={args.seed}")
    print(f"messages_sent={sent} replies={replies} no_reply={no_reply} junk_to_xpub={junk}")
    print(f"crashes={0 if alive else 1}")
    print(f"rss_before_mib={rss_before / 2**20:.1f} rss_after_mib={rss_after / 2**20:.1f}")
    return 0 if alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
