"""SendingRole on 127.0.0.1 without a receiver: what it refuses and what it leaves alone."""

from __future__ import annotations

import logging

import pytest

from constellation.core.config import DataConfig
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import DataTimeoutError, SendingStoppedError
from constellation.metrics import MetricRegistry
from constellation.net.discovery import ServiceId
from constellation.net.interfaces import NetworkScope
from constellation.roles.base import RoleContext
from constellation.roles.sending import SendingRole
from tests.helpers import LOOPBACK


class FakeDiscovery:
    def __init__(self) -> None:
        self.announced: dict[ServiceId, int] = {}

    def announce(self, service: ServiceId, port: int) -> None:
        self.announced[service] = port

    def withdraw(self, service: ServiceId) -> None:
        self.announced.pop(service, None)


def _role(state: list[State], failures: list[str]) -> SendingRole:
    def fail(reason: str, error: BaseException | None = None) -> None:
        failures.append(reason)

    ctx = RoleContext(
        "Tx.t",
        NetworkScope((LOOPBACK,)),
        logging.getLogger("test.sending"),
        state=lambda: state[0],
        fail=fail,
        metrics=MetricRegistry("Tx.t", lambda: state[0], "test.sending"),
        run_condition=lambda: RunCondition.GOOD,
        closing=lambda: False,
        version="0",
    )
    return SendingRole(ctx)


def test_outside_a_run_nothing_is_sent_and_nothing_fails() -> None:
    state, failures = [State.ORBIT], list[str]()
    role = _role(state, failures)
    discovery = FakeDiscovery()
    role.announce(discovery)  # type: ignore[arg-type]
    try:
        assert role.data is not None and discovery.announced[ServiceId.DATA] == role.data.port
        assert role.sender is None
        error = role.not_sending_error()
        assert isinstance(error, DataTimeoutError) and "do_run" in str(error)
        role.unblock()  # no run: no effect
        role.end_run(interrupted=False)
        role.finish_run(RunCondition.GOOD, {})  # no BOR went out: no EOR either
        role.abort(State.ORBIT)
        with pytest.raises(SendingStoppedError):
            role.data.add({}, (b"x",), 1)
        with pytest.raises(DataTimeoutError, match="do_run"):
            role.reserve(16, None).send()  # the same refusal as send_record
        assert failures == []
    finally:
        role.close()


def test_disabled_transmission_withdraws_the_service_and_drops_records_in_run() -> None:
    state, failures = [State.INIT], list[str]()
    role = _role(state, failures)
    discovery = FakeDiscovery()
    role.announce(discovery)  # type: ignore[arg-type]
    try:
        role.configure(DataConfig(disable_transmission=True))
        assert ServiceId.DATA not in discovery.announced
        role.begin_run("r1", {"a": 1}, {})  # no receiver needed: no BOR is sent
        state[0] = State.RUN
        assert role.sender is None and role.not_sending_error() is None
        assert role.reserve(16, {"a": 1}).send() == 0  # dropped, like send_record
        role.end_run(interrupted=False)
        role.finish_run(RunCondition.GOOD, {})
        assert failures == []
    finally:
        role.close()
