"""The ROUTER command server: envelopes, out-of-order replies, clients that leave early."""

from __future__ import annotations

from typing import Any

import zmq

from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from tests.helpers import LOOPBACK, wait_for
from tests.integration.test_threading_contract import Holder, _dealer, _encode, _receive


def test_message_without_delimiter_is_dropped_and_counted(satellites: Any) -> None:
    sat = satellites(Holder, "nodelim")
    sock = _dealer(sat)
    try:
        sock.send_multipart(_encode("get_state"))  # no empty delimiter frame
        wait_for(lambda: sat._command_server.malformed_count == 1, 5, what="drop counted")
        assert not sock.poll(100)
        sock.send_multipart([b"", *_encode("get_state")])
        assert _receive(sock).verb == "NEW"
    finally:
        sock.close()


def test_replies_go_out_of_order_to_req_clients(satellites: Any) -> None:
    sat = satellites(Holder, "order")
    port = sat._command_server.port
    ctx = zmq.Context.instance()
    slow, fast = ctx.socket(zmq.REQ), ctx.socket(zmq.REQ)
    try:
        for sock in (slow, fast):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://{LOOPBACK}:{port}")
        slow.send_multipart(_encode("hold", ["first"]))
        wait_for(lambda: sat.threads.commands.pending == 1, 5, what="hold running")
        fast.send_multipart(_encode("get_name"))
        assert fast.poll(5000), "second client not answered while the first waits"
        assert CSCP1Message.decode(fast.recv_multipart()).verb == "Holder.order"
        assert not slow.poll(0)
        sat.release.set()
        assert slow.poll(5000)
        reply = CSCP1Message.decode(slow.recv_multipart())
        assert (reply.msg_type, reply.payload) == (CSCPType.SUCCESS, "held first")
    finally:
        slow.close()
        fast.close()


def test_client_gone_before_its_reply_does_not_disturb_the_server(satellites: Any) -> None:
    sat = satellites(Holder, "gone")
    leaving = _dealer(sat)
    leaving.send_multipart([b"", *_encode("hold", ["orphan"])])
    wait_for(lambda: sat.threads.commands.pending == 1, 5, what="hold running")
    leaving.close()
    sat.release.set()
    wait_for(lambda: sat._command_server.pending_replies == 0, 5, what="orphan reply sent")
    sock = _dealer(sat)
    try:
        sock.send_multipart([b"", *_encode("get_state")])
        assert _receive(sock).verb == "NEW"
    finally:
        sock.close()
