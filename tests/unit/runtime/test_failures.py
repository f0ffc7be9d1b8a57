"""Going to ERROR: where do_failure runs, and that nothing it does escapes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from constellation.core.fsm import SatelliteFSM
from constellation.core.states import State
from constellation.errors import ConfigError
from constellation.runtime.failures import FailureHandler
from constellation.runtime.workers import ActiveCalls, Worker

_RIGS: list[Rig] = []


@pytest.fixture(autouse=True)
def _shut_down_rigs() -> Iterator[None]:
    """Shut down every rig's worker so that its thread ends with the test."""
    yield
    while _RIGS:
        _RIGS.pop().tasks.shutdown()


class Rig:
    def __init__(self, in_loop: bool, failing_hook: bool = False) -> None:
        self.fsm = SatelliteFSM()
        self.stop = threading.Event()
        self.tasks = Worker("rig-tasks")
        _RIGS.append(self)
        self.status: list[str] = []
        self.cleaned: list[State] = []
        self.hook_threads: list[str] = []
        self.failing_hook = failing_hook
        self.handler = FailureHandler(
            self.fsm,
            self.stop,
            logging.getLogger("test.failures"),
            set_status=self.status.append,
            clean_up=self.cleaned.append,
            do_failure=self.do_failure,
            in_loop_thread=lambda: in_loop,
            tasks=self.tasks,
            active=ActiveCalls(),
        )

    def do_failure(self) -> None:
        self.hook_threads.append(threading.current_thread().name)
        if self.failing_hook:
            raise OSError("power supply unreachable")


def test_fail_outside_the_loop_runs_do_failure_inline() -> None:
    rig = Rig(in_loop=False)
    rig.handler.fail("bias lost")
    assert rig.fsm.state is State.ERROR and rig.stop.is_set()
    assert rig.status == ["bias lost"] and rig.cleaned == [State.NEW]
    assert rig.hook_threads == [threading.current_thread().name]


def test_fail_in_the_loop_hands_do_failure_to_the_task_worker() -> None:
    rig = Rig(in_loop=True)
    rig.handler.fail("framework error")
    assert rig.tasks.wait_idle(5)
    assert rig.hook_threads == ["rig-tasks"]


def test_raising_do_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(in_loop=False, failing_hook=True)
    with caplog.at_level(logging.ERROR, "test.failures"):
        rig.handler.fail("x", ConfigError("a", "b"))  # expected error: no traceback
    assert rig.fsm.state is State.ERROR
    assert any("do_failure raised" in r.message for r in caplog.records)
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.message for r in critical] == ["x"] and critical[0].exc_info is None


def test_fail_after_close_skips_do_failure_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(in_loop=True)
    rig.tasks.shutdown()
    with caplog.at_level(logging.WARNING, "test.failures"):
        rig.handler.fail("late")
    assert rig.fsm.state is State.ERROR and rig.hook_threads == []
    assert any("do_failure not called" in r.message for r in caplog.records)
