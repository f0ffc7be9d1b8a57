"""The transition runner: jobs in the hook worker, status, completion, failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from constellation.core.fsm import Command, SatelliteFSM
from constellation.core.states import State
from constellation.errors import ConfigError, HookError, InvalidStateError
from constellation.runtime.transitions import HookCaller, TransitionRunner, failure_reason
from constellation.runtime.workers import ActiveCalls, Worker

_RIGS: list[Rig] = []


@pytest.fixture(autouse=True)
def _shut_down_rigs() -> Iterator[None]:
    """Shut down every rig's worker so that its thread ends with the test."""
    yield
    while _RIGS:
        _RIGS.pop().worker.shutdown()


class Rig:
    def __init__(self) -> None:
        self.fsm = SatelliteFSM()
        self.worker = Worker("rig-hooks")
        _RIGS.append(self)
        self.stop = threading.Event()
        self.statuses: list[str] = []
        self.failures: list[tuple[str, BaseException | None]] = []
        self.ran = threading.Event()
        self.runner = TransitionRunner(
            self.fsm,
            self.worker,
            self.stop,
            await_conditions=lambda command: None,
            fail=self._fail,
            set_status=self.statuses.append,
            default_status=lambda command, before: f"{command.value} from {before.name}",
            on_run=self.ran.set,
        )

    def _fail(self, reason: str, error: BaseException | None) -> None:
        self.failures.append((reason, error))
        self.fsm.fail()

    def settle(self) -> None:
        assert self.worker.wait_idle(5)


def test_job_runs_in_the_worker_and_completes_with_its_status() -> None:
    rig = Rig()
    threads: list[str] = []

    def job() -> str:
        threads.append(threading.current_thread().name)
        return "Connected"

    result = rig.runner.begin(Command.initialize, job)
    assert (result.text, result.payload) == ("transitioning", "initialize")
    rig.settle()
    assert rig.fsm.state is State.INIT
    assert rig.statuses == ["Connected"] and threads == ["rig-hooks"]


def test_default_status_when_the_job_returns_none() -> None:
    rig = Rig()
    rig.runner.begin(Command.initialize, lambda: None)
    rig.settle()
    assert rig.statuses == ["initialize from NEW"]


def test_failing_job_fails_with_the_hook_named() -> None:
    rig = Rig()
    caller = HookCaller(type("T", (), {"do_initializing": lambda self: 1 / 0})(), ActiveCalls())
    rig.runner.begin(Command.initialize, lambda: caller("do_initializing"))
    rig.settle()
    assert rig.fsm.state is State.ERROR
    [(reason, error)] = rig.failures
    assert reason == "ZeroDivisionError in do_initializing: division by zero"
    assert isinstance(error, HookError) and error.hook == "do_initializing"


def test_start_calls_on_run_and_stop_sets_the_stop_event() -> None:
    rig = Rig()
    for command in (Command.initialize, Command.launch, Command.start):
        rig.runner.begin(command, lambda: None)
        rig.settle()
    assert rig.fsm.state is State.RUN and rig.ran.is_set()
    assert not rig.stop.is_set()
    rig.runner.begin(Command.stop, lambda: None)
    assert rig.stop.is_set()
    rig.settle()
    assert rig.fsm.state is State.ORBIT


def test_begin_in_a_wrong_state_raises_and_queues_nothing() -> None:
    rig = Rig()
    with pytest.raises(InvalidStateError):
        rig.runner.begin(Command.launch, lambda: None)
    assert rig.worker.pending == 0


def test_failure_reason_texts() -> None:
    assert failure_reason(HookError("do_run", KeyError("x"))) == "KeyError in do_run: 'x'"
    config = failure_reason(ConfigError("a.b", "missing"))
    assert config == "Configuration error: key 'a.b': missing"
    assert failure_reason(RuntimeError("boom")) == "RuntimeError: boom"
