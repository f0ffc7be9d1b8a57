"""ReceivingRole without sockets: which transmitters a run connects to, and its run condition."""

from __future__ import annotations

import logging
from typing import Any

from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.metrics import MetricRegistry
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.receiver import ReceiverSatellite
from constellation.roles.base import RoleContext
from constellation.roles.receiving import ReceiveCallbacks, ReceivingRole
from tests.helpers import LOOPBACK

__all__: list[str] = []


def _service(name: str, port: int) -> DiscoveredService:
    return DiscoveredService("g", name, ServiceId.DATA, LOOPBACK, port)


class FakeReceiver:
    """Records the services it is told to connect to."""

    def __init__(self) -> None:
        self.connected: list[str] = []
        self.closed = False

    def connect(self, service: DiscoveredService) -> None:
        self.connected.append(service.name)

    def close(self) -> None:
        self.closed = True


def _ignore(*_args: Any) -> None:
    return None


def _context() -> RoleContext:
    return RoleContext(
        "Receiver.rx",
        NetworkScope((LOOPBACK,)),
        logging.getLogger("test.roles"),
        state=lambda: State.ORBIT,
        fail=_ignore,
        metrics=MetricRegistry("Receiver.rx", lambda: State.ORBIT, "test.roles"),
        run_condition=lambda: RunCondition.GOOD,
        closing=lambda: False,
        version="0",
    )


def test_a_transmitter_discovered_while_the_run_begins_is_connected() -> None:
    """Discovery runs in its own thread: a transmitter found while ``begin_run`` sets up the
    receiver (here: while the receiver is built) must be connected like the known ones."""
    made: list[FakeReceiver] = []
    role: ReceivingRole

    def make_receiver() -> Any:
        receiver = FakeReceiver()
        made.append(receiver)
        role.on_data_service(DiscoveryEvent.ADDED, _service("Sender.late", 2))  # the race
        return receiver

    role = ReceivingRole(_context(), ReceiveCallbacks(_ignore, _ignore, _ignore), make_receiver)
    role.on_data_service(DiscoveryEvent.ADDED, _service("Sender.early", 1))
    role.begin_run("run1", {}, {})
    try:
        assert sorted(set(made[0].connected)) == ["Sender.early", "Sender.late"]
        role.on_data_service(DiscoveryEvent.ADDED, _service("Sender.later", 3))
        assert "Sender.later" in made[0].connected
    finally:
        role.end_run(interrupted=False)
    assert made[0].closed and role.run_condition_text() == "NO_DATA"


def test_close_calls_on_close_once_after_the_data_role_closed() -> None:
    """The clean-up point of subclasses (the HDF5 writer closes its file there)."""
    order: list[str] = []

    class Closing(ReceiverSatellite):
        def on_close(self) -> None:
            order.append("on_close" if self._role.receiver is None else "too early")

    sat = Closing("c", "g", interfaces=[LOOPBACK], discovery="chirp")
    sat.start()
    sat.close()
    sat.close()
    assert order == ["on_close"]
