"""A satellite's command server answers every request, malformed or not, and keeps serving."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import msgpack
import pytest
import zmq

from constellation.core.states import State
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from satellites.example import Example
from tests.helpers import LOOPBACK, wait_for


class Failing(Example):
    """Raises in do_launching."""

    def do_launching(self) -> str:
        raise RuntimeError("bias supply did not answer")


def _endpoint(sat: Any) -> str:
    return f"tcp://{LOOPBACK}:{sat._command_server.port}"


def _request(sock: zmq.Socket, verb: str, payload: Any = NO_PAYLOAD) -> CSCP1Message:
    sock.send_multipart(CSCP1Message("Test.ctrl", CSCPType.REQUEST, verb, payload).encode())
    assert sock.poll(5000), f"no reply to {verb}"
    return CSCP1Message.decode(sock.recv_multipart())


@pytest.fixture
def req(satellites: Any) -> Any:
    ctx = zmq.Context.instance()
    socks: list[zmq.Socket] = []

    def connect(sat: Any) -> zmq.Socket:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(_endpoint(sat))
        socks.append(sock)
        return sock

    yield connect
    for sock in socks:
        sock.close()


def test_standard_commands(satellites: Any, req: Any) -> None:
    sat = satellites(Example, "std")
    sock = req(sat)
    assert _request(sock, "get_name").verb == "Example.std"
    state = _request(sock, "GET_STATE")  # case-insensitive
    assert (state.verb, state.payload) == ("NEW", 0x10)
    assert isinstance(state.tags["last_changed"], datetime)
    commands = _request(sock, "get_commands")
    assert commands.msg_type is CSCPType.SUCCESS
    assert {"initialize", "launch", "start", "set_offset", "get_state"} <= set(commands.payload)
    assert not any(name.startswith("_") for name in commands.payload)
    assert "offset" in commands.payload["set_offset"]
    hidden = _request(sock, "_get_commands")
    assert {"_interrupt", "_failure"} <= set(hidden.payload)
    role = _request(sock, "get_role")
    assert (role.verb, role.payload) == ("DYNAMIC", 0x06)
    assert _request(sock, "get_run_id").verb == ""


def test_error_replies(satellites: Any, req: Any) -> None:
    sat = satellites(Example, "err")
    sock = req(sat)
    unknown = _request(sock, "warp_drive")
    assert unknown.msg_type is CSCPType.UNKNOWN and "warp_drive" in unknown.verb
    invalid = _request(sock, "launch")
    assert invalid.msg_type is CSCPType.INVALID and "NEW" in invalid.verb
    wrong_type = _request(sock, "initialize", "not a map")
    assert wrong_type.msg_type is CSCPType.INCOMPLETE and "config" in wrong_type.verb
    # the payload is checked before the state: a bad run identifier is named even in NEW
    bad_run_id = _request(sock, "start", "has space")
    assert bad_run_id.msg_type is CSCPType.INCOMPLETE and "run_id" in bad_run_id.verb
    assert _request(sock, "initialize", {}).msg_type is CSCPType.SUCCESS
    assert sat.wait_for_state(State.INIT, 5)
    count = _request(sock, "set_offset", [1.0, 2.0])
    assert count.msg_type is CSCPType.INCOMPLETE and "offset" in count.verb
    kind = _request(sock, "set_offset", ["high"])
    assert kind.msg_type is CSCPType.INCOMPLETE and "offset" in kind.verb
    ok = _request(sock, "set_offset", [2])
    assert ok.msg_type is CSCPType.SUCCESS and ok.payload == 2
    assert _request(sock, "launch", "unexpected payload").msg_type is CSCPType.INCOMPLETE
    assert sat.state is State.INIT


def test_failing_hook_goes_to_error_with_reason(satellites: Any, req: Any) -> None:
    sat = satellites(Failing, "f")
    sock = req(sat)
    assert _request(sock, "initialize", {}).verb == "transitioning"
    assert sat.wait_for_state(State.INIT, 5)
    assert _request(sock, "launch").msg_type is CSCPType.SUCCESS
    assert sat.wait_for_state(State.ERROR, 5)
    status = _request(sock, "get_status").verb
    assert status == "RuntimeError in do_launching: bias supply did not answer"
    assert _request(sock, "launch").msg_type is CSCPType.INVALID  # ERROR is left only by init
    assert _request(sock, "initialize", {}).msg_type is CSCPType.SUCCESS
    assert sat.wait_for_state(State.INIT, 5)


def test_config_error_names_the_key(satellites: Any, req: Any) -> None:
    sat = satellites(Example, "cfg")
    sock = req(sat)
    _request(sock, "initialize", {"sample_period": "fast", "unused_key": 1})
    assert sat.wait_for_state(State.ERROR, 5)
    assert "sample_period" in _request(sock, "get_status").verb
    _request(sock, "initialize", {"sample_period": 0.5, "_data": {"bor_timeout": 3}, "x": 1})
    assert sat.wait_for_state(State.INIT, 5)
    status = _request(sock, "get_status").verb
    assert "unused" in status and "x" in status and "_data" in status
    config = _request(sock, "get_config").payload
    assert config["sample_period"] == 0.5
    assert config["_autonomy"]["role"] == "DYNAMIC"  # a default that was used is recorded


def _garbage(rng: random.Random) -> list[bytes]:
    kind = rng.randrange(6)
    valid = CSCP1Message("Fuzz.f", CSCPType.REQUEST, "get_state").encode()
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 5))]
    if kind == 1:  # wrong protocol identifier
        return [msgpack.packb("CSCP\x02") + valid[0][6:], valid[1]]
    if kind == 2:  # wrong number of frames
        return [*valid, b"\xc1", b"extra"]
    if kind == 3:  # undecodable payload frame
        return [*valid, b"\xc1\xc1"]
    if kind == 4:  # truncated header
        return [valid[0][: rng.randrange(len(valid[0]))], valid[1]]
    frame = bytearray(valid[0])
    frame[rng.randrange(len(frame))] = rng.randrange(256)
    return [bytes(frame), valid[1]]


def test_ten_thousand_garbage_messages(satellites: Any) -> None:
    sat = satellites(Example, "fuzz")
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(_endpoint(sat))
    rng = random.Random(1234)
    replies: dict[int, int] = {}
    try:
        for _ in range(100):  # 100 bursts of 100 in flight
            for _ in range(100):
                dealer.send_multipart([b"", *_garbage(rng)])
            for _ in range(100):
                assert dealer.poll(5000), "satellite stopped answering"
                frames = dealer.recv_multipart()
                reply = CSCP1Message.decode(frames[1:])
                replies[int(reply.msg_type)] = replies.get(int(reply.msg_type), 0) + 1
    finally:
        dealer.close()
    assert sum(replies.values()) == 10_000
    assert replies.get(int(CSCPType.ERROR), 0) > 5_000
    with zmq.Context.instance().socket(zmq.REQ) as sock:
        sock.connect(_endpoint(sat))
        state = _request(sock, "get_state")
        assert (state.verb, state.payload) == ("NEW", 0x10)
    assert sat.state is State.NEW
    assert wait_for(lambda: sat._command_server.malformed_count > 0)


def test_shutdown_reply_is_sent_before_shutdown_is_requested(satellites: Any, req: Any) -> None:
    sat = satellites(Example, "bye")
    sock = req(sat)
    server = sat._command_server
    sent_at_request: list[int] = []
    original = sat.request_shutdown

    def request_shutdown() -> None:
        sent_at_request.append(server.replies_sent)
        original()

    sat.request_shutdown = request_shutdown
    before = server.replies_sent
    sock.send_multipart(CSCP1Message("Test.ctrl", CSCPType.REQUEST, "shutdown").encode())
    assert sat.wait_for_shutdown(5)
    sat.close()  # at once, as the satellite's main does: the reply still arrives
    assert sock.poll(5000), "the shutdown reply was lost"
    reply = CSCP1Message.decode(sock.recv_multipart())
    assert (reply.msg_type, reply.verb) == (CSCPType.SUCCESS, "Shutting down")
    assert sent_at_request == [before + 1]
