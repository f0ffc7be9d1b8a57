"""InterruptHandler: only from ORBIT or RUN, the first of racing interrupts wins."""

from __future__ import annotations

import logging
import threading

import pytest

from constellation.core.states import State
from constellation.errors import InvalidStateError
from constellation.runtime.interrupts import InterruptHandler

LOG = logging.getLogger("test.interrupts")


class Host:
    """The satellite's side: a state, the begun interrupts and the data role's unblocks."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.begun: list[tuple[State, str]] = []
        self.unblocked = 0

    def begin(self, state: State, reason: str) -> None:
        if self.state is not state:  # what the state machine would refuse
            raise InvalidStateError("no longer interruptible")
        self.begun.append((state, reason))
        self.state = State.interrupting

    def unblock(self) -> None:
        self.unblocked += 1

    def handler(self) -> InterruptHandler:
        return InterruptHandler(lambda: self.state, LOG, begin=self.begin, unblock=self.unblock)


@pytest.mark.parametrize("state", [State.ORBIT, State.RUN])
def test_interrupt_begins_from_orbit_and_run(state: State) -> None:
    host = Host(state)
    assert host.handler().interrupt("peer died")
    assert host.begun == [(state, "peer died")] and host.unblocked == 1


@pytest.mark.parametrize("state", [State.NEW, State.INIT, State.SAFE, State.ERROR])
def test_other_states_are_left_alone(state: State) -> None:
    host = Host(state)
    assert not host.handler().interrupt("peer died")
    assert host.begun == [] and host.unblocked == 0


def test_racing_interrupts_first_reason_stays() -> None:
    host = Host(State.RUN)
    handler = host.handler()
    results: list[bool] = []
    start = threading.Barrier(8)

    def race(n: int) -> None:
        start.wait(5)
        results.append(handler.interrupt(f"reason {n}"))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(results) == [False] * 7 + [True]
    assert len(host.begun) == 1 and host.unblocked == 1


def test_a_refused_transition_is_no_interrupt() -> None:
    host = Host(State.RUN)

    def refuse(state: State, reason: str) -> None:
        raise InvalidStateError("busy")

    handler = InterruptHandler(lambda: host.state, LOG, begin=refuse, unblock=host.unblock)
    assert not handler.interrupt("late") and host.unblocked == 0


def test_a_failing_unblock_is_logged_and_the_interrupt_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = Host(State.ORBIT)

    def broken() -> None:
        raise RuntimeError("socket gone")

    handler = InterruptHandler(lambda: host.state, LOG, begin=host.begin, unblock=broken)
    with caplog.at_level(logging.WARNING, LOG.name):
        assert handler.interrupt("peer died")
    assert "data role reaction to the interrupt failed" in caplog.text
    assert "interrupting: peer died" in caplog.text
