"""Which thread answers a request: standard commands at once, user commands in the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from constellation.core.commands import CommandRegistry, CommandResult, CommandSpec, Param
from constellation.core.states import State
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from constellation.runtime.requests import RequestRouter
from constellation.runtime.workers import ActiveCalls, Worker
from tests.helpers import wait_for


def _request(verb: str, payload: Any = NO_PAYLOAD) -> CSCP1Message:
    return CSCP1Message("Test.ctrl", CSCPType.REQUEST, verb, payload)


_RIGS: list[Rig] = []


@pytest.fixture(autouse=True)
def _shut_down_rigs() -> Iterator[None]:
    """Shut down every rig's worker so that its thread ends with the test."""
    yield
    while _RIGS:
        _RIGS.pop().worker.shutdown()


class Rig:
    def __init__(self, max_queued: int = 2) -> None:
        self.state = State.INIT
        self.gate = threading.Event()
        self.threads: list[str] = []
        self.active = ActiveCalls()
        self.worker = Worker("rig-commands")
        _RIGS.append(self)
        registry = CommandRegistry(
            [
                CommandSpec("get_state", lambda: CommandResult(self.state.name), "state"),
                CommandSpec(
                    "calibrate",
                    self.calibrate,
                    "blocks until the gate opens",
                    (Param("channel", int),),
                    allowed_states={State.INIT},
                ),
            ]
        )
        self.router = RequestRouter(
            registry,
            lambda: self.state,
            "Rig.r",
            self.worker,
            self.active,
            deferred=["CALIBRATE"],
            max_queued=max_queued,
        )

    def calibrate(self, channel: int) -> int:
        self.threads.append(threading.current_thread().name)
        self.gate.wait(5)
        return channel * 10


def test_standard_command_is_answered_synchronously() -> None:
    rig = Rig()
    reply = rig.router(_request("get_state"))
    assert isinstance(reply, CSCP1Message) and reply.verb == "INIT"


def test_user_command_reply_is_its_return_value_computed_in_the_worker() -> None:
    rig = Rig()
    rig.gate.set()
    future = rig.router(_request("Calibrate", [4]))
    assert isinstance(future, Future)
    reply = future.result(5)
    assert (reply.msg_type, reply.payload) == (CSCPType.SUCCESS, 40)
    assert rig.threads == ["rig-commands"]


def test_checks_fail_at_once_without_queueing() -> None:
    rig = Rig()
    wrong = rig.router(_request("calibrate", ["x"]))
    assert isinstance(wrong, CSCP1Message) and wrong.msg_type is CSCPType.INCOMPLETE
    rig.state = State.ORBIT
    invalid = rig.router(_request("calibrate", [1]))
    assert isinstance(invalid, CSCP1Message) and invalid.msg_type is CSCPType.INVALID
    assert rig.worker.pending == 0


def test_queued_commands_wait_then_overflow_is_busy() -> None:
    rig = Rig(max_queued=2)
    futures = [rig.router(_request("calibrate", [i])) for i in range(3)]  # 1 running + 2 queued
    assert all(isinstance(f, Future) for f in futures)
    busy = rig.router(_request("calibrate", [9]))
    assert isinstance(busy, CSCP1Message) and busy.msg_type is CSCPType.ERROR
    assert "Busy" in busy.verb and "calibrate" in busy.verb
    wait_for(lambda: [a.name for a in rig.active.snapshot()] == ["command 'calibrate'"], 5)
    rig.gate.set()
    assert [f.result(5).payload for f in futures] == [0, 10, 20]  # type: ignore[union-attr]


def test_state_is_checked_again_when_a_queued_command_begins() -> None:
    rig = Rig()
    first = rig.router(_request("calibrate", [1]))
    wait_for(lambda: rig.active.snapshot(), 5, what="first command running")
    second = rig.router(_request("calibrate", [2]))
    rig.state = State.ORBIT  # changes while the second one waits
    rig.gate.set()
    assert first.result(5).msg_type is CSCPType.SUCCESS  # type: ignore[union-attr]
    assert second.result(5).msg_type is CSCPType.INVALID  # type: ignore[union-attr]
