"""Two interrupts at once: the one that wins keeps its reason in the final status."""

from __future__ import annotations

import threading
from typing import Any

import zmq

from constellation.core.states import State
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from satellites.example import Example
from tests.helpers import LOOPBACK


def _ask(sat: Any, verb: str, payload: Any = NO_PAYLOAD) -> CSCP1Message:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://{LOOPBACK}:{sat._command_server.port}")
        sock.send_multipart(CSCP1Message("Test.ctrl", CSCPType.REQUEST, verb, payload).encode())
        assert sock.poll(5000), f"no reply to {verb}"
        return CSCP1Message.decode(sock.recv_multipart())
    finally:
        sock.close()


def test_a_losing_concurrent_interrupt_keeps_the_winners_reason(satellites: Any) -> None:
    sat = satellites(Example, "race")
    assert _ask(sat, "initialize", {}).msg_type is CSCPType.SUCCESS
    assert sat.wait_for_state(State.INIT, 10)
    assert _ask(sat, "launch").msg_type is CSCPType.SUCCESS
    assert sat.wait_for_state(State.ORBIT, 10)

    real_begin = sat.transitions.begin
    loser_at_begin, winner_began = threading.Event(), threading.Event()
    results: dict[str, bool] = {}
    threads: list[threading.Thread] = []

    def begin(command: Any, job: Any) -> Any:
        if threading.current_thread().name == "loser":
            loser_at_begin.set()
            winner_began.wait(5)  # the loser gets here only while interrupts are not serialised
            return real_begin(command, job)
        # The winner: let the loser get as far as it can, then begin first.
        loser = threading.Thread(
            target=lambda: results.setdefault("loser", sat.interrupt("second reason")),
            name="loser",
            daemon=True,
        )
        threads.append(loser)
        loser.start()
        loser_at_begin.wait(0.5)  # never set once interrupts are serialised
        try:
            return real_begin(command, job)
        finally:
            winner_began.set()

    sat.transitions.begin = begin
    results["winner"] = sat.interrupt("first reason")
    threads[0].join(5)
    assert sat.wait_for_state(State.SAFE, 10)
    assert results == {"winner": True, "loser": False}
    assert "first reason" in sat.status, sat.status
