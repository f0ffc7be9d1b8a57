"""The threading contract: user code never runs in the event-loop thread.

A custom command that blocks delays neither heartbeats nor other commands' replies, its reply is
its return value, a second one waits its turn, and a hook that ignores ``stop_requested()`` does
not keep the process alive after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from constellation.core.states import State
from constellation.protocol.chp1 import CHP1Message
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from constellation.runtime.requests import DEFAULT_MAX_QUEUED
from constellation.satellite import CustomCommand, Satellite
from tests.conftest import FAST_TIMING
from tests.helpers import LOOPBACK, REPO, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _encode(verb: str, payload: Any = NO_PAYLOAD) -> list[bytes]:
    return CSCP1Message("Test.ctrl", CSCPType.REQUEST, verb, payload).encode()


def _req(port: int) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{LOOPBACK}:{port}")
    return sock


def _ask(port: int, verb: str, payload: Any = NO_PAYLOAD, timeout: float = 5.0) -> CSCP1Message:
    with _req(port) as sock:
        sock.send_multipart(_encode(verb, payload))
        assert sock.poll(int(timeout * 1000)), f"no reply to {verb}"
        return CSCP1Message.decode(sock.recv_multipart())


class SluggishProcess:
    """``tests/integration/sluggish.py`` as a satellite process with known ports."""

    def __init__(self, group: str, log_path: Path) -> None:
        self.log_path = log_path
        for attempt in range(3):
            self._start(group)
            try:
                wait_for(self._answers, 20, 0.1, "the satellite process to answer")
                return
            except AssertionError:
                # a port found free was taken by another process before the satellite bound
                # it (other tests run in parallel): try other ports
                if attempt == 2 or "Address already in use" not in self.output():
                    raise
                self.stop()

    def _start(self, group: str) -> None:
        self.cmd_port, self.hb_port = _free_port(), _free_port()
        args = ["-g", group, "-n", "s", "-i", LOOPBACK, "-l", "DEBUG"]
        args += ["--cmd-port", str(self.cmd_port), "--hb-port", str(self.hb_port)]
        env = {**os.environ, **FAST_TIMING}
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.sluggish", *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _answers(self) -> bool:
        assert self.proc.poll() is None, f"satellite exited:\n{self.output()}"
        with _req(self.cmd_port) as sock:
            sock.send_multipart(_encode("get_state"))
            return bool(sock.poll(200))

    def state(self) -> str:
        return _ask(self.cmd_port, "get_state").verb

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def sluggish(group: str, tmp_path: Path) -> Iterator[SluggishProcess]:
    proc = SluggishProcess(group, tmp_path / "sluggish.log")
    yield proc
    proc.stop()


def test_blocking_custom_command_delays_neither_commands_nor_heartbeats(
    sluggish: SluggishProcess,
) -> None:
    beats = zmq.Context.instance().socket(zmq.SUB)
    beats.setsockopt(zmq.LINGER, 0)
    beats.setsockopt(zmq.SUBSCRIBE, b"")
    beats.connect(f"tcp://{LOOPBACK}:{sluggish.hb_port}")
    slow, poller = _req(sluggish.cmd_port), _req(sluggish.cmd_port)
    try:
        assert beats.poll(5000), "no heartbeat before the test"
        beats.recv_multipart()
        slow.send_multipart(_encode("slow", [3.0]))
        started = time.monotonic()
        round_trips: list[float] = []
        beat_times: list[float] = []
        while not slow.poll(0):
            assert time.monotonic() - started < 10, "slow command never answered"
            sent = time.monotonic()
            poller.send_multipart(_encode("get_state"))
            assert poller.poll(5000), "get_state not answered while the slow command ran"
            reply = CSCP1Message.decode(poller.recv_multipart())
            round_trips.append(time.monotonic() - sent)
            assert (reply.verb, reply.payload) == ("NEW", int(State.NEW))
            while beats.poll(0):
                CHP1Message.decode(beats.recv_multipart())
                beat_times.append(time.monotonic())
            poller.poll(50)  # pace the polls (nothing arrives on this socket)
        answered = time.monotonic() - started
        reply = CSCP1Message.decode(slow.recv_multipart())
    finally:
        for sock in (beats, slow, poller):
            sock.close()
    assert reply.msg_type is CSCPType.SUCCESS, reply.verb
    assert reply.payload == 3.0  # the reply carries the handler's return value
    assert answered >= 2.9, "the reply came before the handler returned"
    assert len(round_trips) >= 10
    assert max(round_trips) <= 0.5, f"get_state took {max(round_trips):.2f} s"
    gaps = [b - a for a, b in zip([started, *beat_times], beat_times, strict=False)]
    assert len(beat_times) >= 10, "heartbeats stopped while the command ran"
    assert max(gaps) <= 0.5, f"heartbeat gap of {max(gaps):.2f} s"


def test_sigterm_exits_despite_a_hook_ignoring_stop(sluggish: SluggishProcess) -> None:
    port = sluggish.cmd_port
    for verb, payload, state in (
        ("initialize", {}, "INIT"),
        ("launch", NO_PAYLOAD, "ORBIT"),
        ("start", "run1", "RUN"),
    ):
        assert _ask(port, verb, payload).msg_type is CSCPType.SUCCESS
        wait_for(lambda s=state: sluggish.state() == s, 10, 0.05, state)
    sluggish.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        sluggish.proc.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still alive 15 s after SIGTERM:\n{sluggish.output()}")
    took = time.monotonic() - sent
    output = sluggish.output()
    assert took < 5.0, f"exit took {took:.1f} s"
    critical = [line for line in output.splitlines() if "CRITICAL" in line and "do_run" in line]
    assert critical, output


# --- in-process: queueing, thread placement ------------------------------------------------------
class Holder(Satellite):
    """``hold(tag)`` blocks until the test releases it; records where user code runs."""

    custom_commands = (CustomCommand("hold", "Block until released.", (("tag", str),)),)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.order: list[str] = []
        self.in_loop: dict[str, bool] = {}
        self.failed = threading.Event()

    def _where(self, what: str) -> None:
        assert self.loop is not None
        self.in_loop[what] = self.loop.in_loop_thread()

    def hold(self, tag: str) -> str:
        self._where("command")
        self.release.wait(10)
        self.order.append(tag)
        return f"held {tag}"

    def do_failure(self) -> None:
        self._where("do_failure")
        self.failed.set()


def _dealer(sat: Satellite) -> zmq.Socket[Any]:
    assert sat._command_server is not None
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{LOOPBACK}:{sat._command_server.port}")
    return sock


def _receive(sock: zmq.Socket[Any], timeout: float = 5.0) -> CSCP1Message:
    assert sock.poll(int(timeout * 1000)), "no reply"
    frames = sock.recv_multipart()
    assert frames[0] == b""
    return CSCP1Message.decode(frames[1:])


def test_second_custom_command_waits_its_turn_and_overflow_is_busy(satellites: Any) -> None:
    sat = satellites(Holder, "q")
    sock = _dealer(sat)
    try:
        for index in range(DEFAULT_MAX_QUEUED + 1):  # one running, the rest queued
            sock.send_multipart([b"", *_encode("hold", [f"t{index}"])])
        wait_for(lambda: sat.threads.commands.pending == DEFAULT_MAX_QUEUED + 1, 5)
        sock.send_multipart([b"", *_encode("hold", ["extra"])])
        busy = _receive(sock)
        assert busy.msg_type is CSCPType.ERROR and "Busy" in busy.verb, busy.verb
        sock.send_multipart([b"", *_encode("get_state")])  # answered while they wait
        assert _receive(sock).verb == "NEW"
        assert not sock.poll(100), "a held command was answered before its release"
        sat.release.set()
        replies = [_receive(sock).payload for _ in range(DEFAULT_MAX_QUEUED + 1)]
    finally:
        sock.close()
    expected = [f"t{index}" for index in range(DEFAULT_MAX_QUEUED + 1)]
    assert sat.order == expected
    assert replies == [f"held {tag}" for tag in expected]


def test_wrong_arguments_of_a_custom_command_are_answered_at_once(satellites: Any) -> None:
    sat = satellites(Holder, "args")
    sock = _dealer(sat)
    try:
        sock.send_multipart([b"", *_encode("hold", ["busy"])])
        wait_for(lambda: sat.threads.commands.pending == 1, 5)
        sock.send_multipart([b"", *_encode("hold", [1, 2])])
        wrong = _receive(sock)
        assert wrong.msg_type is CSCPType.INCOMPLETE and "tag" in wrong.verb
        sat.release.set()
        assert _receive(sock).payload == "held busy"
    finally:
        sock.close()


def test_user_code_runs_off_the_loop_thread(satellites: Any) -> None:
    sat = satellites(Holder, "where")
    sat.release.set()
    sock = _dealer(sat)
    ticked = threading.Event()

    def tick() -> None:
        sat._where("task")
        ticked.set()

    polled = threading.Event()

    def poll() -> int:
        sat._where("metric poll")
        polled.set()
        return 1

    assert sat.monitoring is not None
    stats = zmq.Context.instance().socket(zmq.SUB)
    stats.setsockopt(zmq.LINGER, 0)
    stats.setsockopt(zmq.SUBSCRIBE, b"STAT/WHERE")
    stats.connect(f"tcp://{LOOPBACK}:{sat.monitoring.port}")
    try:
        sock.send_multipart([b"", *_encode("hold", ["x"])])
        assert _receive(sock).payload == "held x"
        sat.every(0.01, tick)
        assert ticked.wait(5)
        sat.metrics.register("WHERE", "", "thread check", poll, 0.02, frozenset(State))
        assert polled.wait(10)
        assert stats.poll(5000), "the sampled metric was not published"
        sock.send_multipart([b"", *_encode("_failure")])  # fail() called in the loop thread
        assert _receive(sock).msg_type is CSCPType.SUCCESS
        assert sat.failed.wait(5)
    finally:
        sock.close()
        stats.close()
    expected = {"command": False, "task": False, "metric poll": False, "do_failure": False}
    assert sat.in_loop == expected
