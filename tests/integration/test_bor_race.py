"""Back-to-back runs on real sockets: the BOR of the next run is never lost.

A PULL socket closed at the end of a run leaves the transmitter's PUSH socket a pipe to it
until the transmitter's I/O thread notices the closed connection; a BOR sent in that window
went into the dead pipe and the receiver saw the run's records without their BOR. The
receiving role now keeps its sockets from run to run; here the transmitter sends the next BOR
as soon as the receiver's ``begin_run`` returned, many times over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.metrics import MetricRegistry
from constellation.net.data_sender import DataSender
from constellation.net.discovery import DiscoveredService, DiscoveryEvent, ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cdtp2 import make_bor, make_eor
from constellation.roles.base import RoleContext
from constellation.roles.receiving import ReceiveCallbacks, ReceivingRole
from tests.helpers import LOOPBACK

__all__: list[str] = []

RUNS = 30
#: Longest wait for one run's EOR (seconds); the runs themselves take milliseconds.
RUN_TIMEOUT = 5.0


def _ignore(*_args: Any) -> None:
    return None


def _role(bors: list[str], eor_seen: threading.Event) -> ReceivingRole:
    ctx = RoleContext(
        "Receiver.rx",
        NetworkScope((LOOPBACK,)),
        logging.getLogger("test.bor_race"),
        state=lambda: State.RUN,
        fail=_ignore,
        metrics=MetricRegistry("Receiver.rx", lambda: State.ORBIT, "test.bor_race"),
        run_condition=lambda: RunCondition.GOOD,
        closing=lambda: False,
        version="0",
    )

    def on_bor(sender: str, tags: dict[str, Any], config: dict[str, Any]) -> None:
        bors.append(config["run"])

    def on_eor(*_args: Any) -> None:
        eor_seen.set()

    return ReceivingRole(ctx, ReceiveCallbacks(on_bor, _ignore, on_eor))


def _transmit(tx: DataSender, begun: threading.Semaphore, errors: list[BaseException]) -> None:
    """Each time the receiver began a run: send its BOR and EOR at once (a thread)."""
    try:
        for run in range(RUNS):
            if not begun.acquire(timeout=RUN_TIMEOUT):
                return
            run_id = f"run_{run}"
            tx.send_message(make_bor("Tx.t", {}, {"run": run_id}), RUN_TIMEOUT)
            metadata = {"run_id": run_id, "data_records": 0}
            tx.send_message(make_eor("Tx.t", {}, metadata), RUN_TIMEOUT)
    except BaseException as exc:
        errors.append(exc)


def _until_eor(eor_seen: threading.Event, deadline: float) -> Callable[[], bool]:
    """The receive loop's stop condition: the EOR came, or the deadline passed."""
    return lambda: eor_seen.is_set() or time.monotonic() > deadline


def test_the_bor_of_a_back_to_back_run_is_received() -> None:
    bors: list[str] = []
    eor_seen = threading.Event()
    role = _role(bors, eor_seen)
    tx = DataSender(zmq.Context.instance(), NetworkScope((LOOPBACK,)), "Tx.t")
    role.on_data_service(
        DiscoveryEvent.ADDED, DiscoveredService("g", "Tx.t", ServiceId.DATA, LOOPBACK, tx.port)
    )
    begun = threading.Semaphore(0)
    errors: list[BaseException] = []
    thread = threading.Thread(target=_transmit, args=(tx, begun, errors), name="bor-race-tx")
    thread.start()
    try:
        for run in range(RUNS):
            run_id = f"run_{run}"
            eor_seen.clear()
            role.begin_run(run_id, {}, {})
            begun.release()
            role.receive(_until_eor(eor_seen, time.monotonic() + RUN_TIMEOUT))
            role.end_run(interrupted=False)
            assert not errors, errors
            assert eor_seen.is_set(), run_id
            assert bors[-1:] == [run_id], f"{run_id}: {role.run_condition_text()}"
            assert role.run_condition_text() == "GOOD", run_id
    finally:
        for _ in range(RUNS):
            begun.release()  # a transmitter thread still waiting ends at once
        thread.join(3 * RUN_TIMEOUT)
        role.close()
        tx.close()
