"""ReceivingRole without sockets: which transmitters a run connects to, and its run condition."""

from __future__ import annotations

import logging
from typing import Any

from constellation.core.config import DataConfig
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
    """Records the services it is told to connect to and the names it is told to drop."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.dropped: list[str] = []
        self.closed = False

    def connect(self, service: DiscoveredService) -> None:
        self.requested.append(service.name)

    def disconnect(self, name: str) -> None:
        self.dropped.append(name.lower())

    def connected(self) -> list[str]:
        names = {name.lower() for name in self.requested}
        return sorted(names - set(self.dropped))

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
        assert sorted(set(made[0].requested)) == ["Sender.early", "Sender.late"]
        role.on_data_service(DiscoveryEvent.ADDED, _service("Sender.later", 3))
        assert "Sender.later" in made[0].requested
    finally:
        role.end_run(interrupted=False)
    assert not made[0].closed and role.run_condition_text() == "NO_DATA"
    role.close()  # the sockets stay open from run to run, until the role closes
    assert made[0].closed


def test_sockets_stay_open_between_runs_except_to_transmitters_no_longer_wanted() -> None:
    """A socket closed between runs could swallow the next BOR (the transmitter's pipe to it
    outlives it): the next run keeps the receiver, minus transmitters dropped from receive_from."""
    made: list[FakeReceiver] = []

    def make_receiver() -> Any:
        made.append(FakeReceiver())
        return made[-1]

    role = ReceivingRole(_context(), ReceiveCallbacks(_ignore, _ignore, _ignore), make_receiver)
    for name, port in (("Sender.a", 1), ("Sender.b", 2)):
        role.on_data_service(DiscoveryEvent.ADDED, _service(name, port))
    role.begin_run("run1", {}, {})
    role.end_run(interrupted=False)
    role.configure(DataConfig(receive_from=("Sender.b",)))
    role.begin_run("run2", {}, {})
    role.end_run(interrupted=False)
    assert len(made) == 1 and not made[0].closed
    assert made[0].dropped == ["sender.a"] and made[0].connected() == ["sender.b"]
    role.close()
    assert made[0].closed


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
