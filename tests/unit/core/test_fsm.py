"""The satellite FSM against an independent transition table (docs/state-machine.md)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constellation.core.fsm import Command, SatelliteFSM
from constellation.core.states import State
from constellation.errors import InvalidStateError

S = State
C = Command

# (state, command) -> transitional state: every legal begin, copied from docs/state-machine.md.
LEGAL: dict[tuple[State, Command], State] = {
    (S.NEW, C.initialize): S.initializing,
    (S.INIT, C.initialize): S.initializing,
    (S.SAFE, C.initialize): S.initializing,
    (S.ERROR, C.initialize): S.initializing,
    (S.INIT, C.launch): S.launching,
    (S.ORBIT, C.land): S.landing,
    (S.ORBIT, C.start): S.starting,
    (S.RUN, C.stop): S.stopping,
    (S.ORBIT, C.reconfigure): S.reconfiguring,
    (S.ORBIT, C.interrupt): S.interrupting,
    (S.RUN, C.interrupt): S.interrupting,
}
# transitional state -> steady state reached on completion.
COMPLETES_TO: dict[State, State] = {
    S.initializing: S.INIT,
    S.launching: S.ORBIT,
    S.landing: S.INIT,
    S.reconfiguring: S.ORBIT,
    S.starting: S.RUN,
    S.stopping: S.ORBIT,
    S.interrupting: S.SAFE,
}
FSM_STATES = [state for state in State if state is not S.DEAD]

# How to reach each state from NEW: a list of commands, "complete" or "fail".
PATHS: dict[State, list[Command | str]] = {
    S.NEW: [],
    S.initializing: [C.initialize],
    S.INIT: [C.initialize, "complete"],
    S.launching: [C.initialize, "complete", C.launch],
    S.ORBIT: [C.initialize, "complete", C.launch, "complete"],
    S.landing: [C.initialize, "complete", C.launch, "complete", C.land],
    S.reconfiguring: [C.initialize, "complete", C.launch, "complete", C.reconfigure],
    S.starting: [C.initialize, "complete", C.launch, "complete", C.start],
    S.RUN: [C.initialize, "complete", C.launch, "complete", C.start, "complete"],
    S.stopping: [C.initialize, "complete", C.launch, "complete", C.start, "complete", C.stop],
    S.interrupting: [C.initialize, "complete", C.launch, "complete", C.interrupt],
    S.SAFE: [C.initialize, "complete", C.launch, "complete", C.interrupt, "complete"],
    S.ERROR: ["fail"],
}


def fsm_in(state: State) -> SatelliteFSM:
    fsm = SatelliteFSM()
    for step in PATHS[state]:
        if step == "complete":
            fsm.complete()
        elif step == "fail":
            fsm.fail()
        else:
            fsm.begin(step)
    assert fsm.state is state
    return fsm


def test_paths_cover_every_state() -> None:
    assert set(PATHS) == set(FSM_STATES)


def test_starts_in_new() -> None:
    assert SatelliteFSM().state is S.NEW


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.value)
@pytest.mark.parametrize("state", FSM_STATES, ids=lambda s: s.name)
def test_begin_every_state_and_command(state: State, command: Command) -> None:
    fsm = fsm_in(state)
    expected = LEGAL.get((state, command))
    if expected is None:
        with pytest.raises(InvalidStateError) as info:
            fsm.begin(command)
        assert f"Command '{command.value}' not allowed in state {state.name}" in str(info.value)
        assert fsm.state is state
    else:
        assert fsm.begin(command) is expected
        assert fsm.state is expected


def test_begin_during_transition_says_so() -> None:
    fsm = fsm_in(S.launching)
    with pytest.raises(InvalidStateError, match="transition is in progress"):
        fsm.begin(C.land)


def test_begin_accepts_command_name() -> None:
    fsm = SatelliteFSM()
    assert fsm.begin("initialize") is S.initializing


def test_begin_unknown_command_name() -> None:
    with pytest.raises(ValueError):
        SatelliteFSM().begin("explode")


@pytest.mark.parametrize("state", FSM_STATES, ids=lambda s: s.name)
def test_complete_from_every_state(state: State) -> None:
    fsm = fsm_in(state)
    if state in COMPLETES_TO:
        assert fsm.complete() is COMPLETES_TO[state]
        assert fsm.state is COMPLETES_TO[state]
    else:
        with pytest.raises(InvalidStateError, match=f"no transition in progress in {state.name}"):
            fsm.complete()
        assert fsm.state is state


@pytest.mark.parametrize("state", FSM_STATES, ids=lambda s: s.name)
def test_fail_from_every_state(state: State) -> None:
    fsm = fsm_in(state)
    assert fsm.fail() is S.ERROR
    assert fsm.state is S.ERROR


@pytest.mark.parametrize("state", [*FSM_STATES, S.DEAD], ids=lambda s: s.name)
def test_allowed_commands_table(state: State) -> None:
    expected = {command for (origin, command) in LEGAL if origin is state}
    assert SatelliteFSM.allowed_commands(state) == frozenset(expected)


def test_full_run_cycle_reports_every_change() -> None:
    changes: list[tuple[State, State]] = []
    fsm = SatelliteFSM(on_change=lambda old, new: changes.append((old, new)))
    for command in (C.initialize, C.launch, C.start, C.stop, C.land):
        fsm.begin(command)
        fsm.complete()
    assert fsm.state is S.INIT
    assert changes == [
        (S.NEW, S.initializing),
        (S.initializing, S.INIT),
        (S.INIT, S.launching),
        (S.launching, S.ORBIT),
        (S.ORBIT, S.starting),
        (S.starting, S.RUN),
        (S.RUN, S.stopping),
        (S.stopping, S.ORBIT),
        (S.ORBIT, S.landing),
        (S.landing, S.INIT),
    ]


def test_no_callback_without_change_or_on_refusal() -> None:
    changes: list[tuple[State, State]] = []
    fsm = SatelliteFSM(on_change=lambda old, new: changes.append((old, new)))
    fsm.fail()
    fsm.fail()  # ERROR -> ERROR is no change
    with pytest.raises(InvalidStateError):
        fsm.begin(C.launch)
    assert changes == [(S.NEW, S.ERROR)]


def test_callback_runs_outside_the_lock() -> None:
    seen: list[State] = []
    fsm: SatelliteFSM

    def on_change(old: State, new: State) -> None:
        seen.append(fsm.state)  # would deadlock if the lock were still held
        if new is S.initializing:
            fsm.complete()  # re-entrant use from the callback works too

    fsm = SatelliteFSM(on_change=on_change)
    fsm.begin(C.initialize)
    assert fsm.state is S.INIT
    assert seen == [S.initializing, S.INIT]


def test_concurrent_begin_only_one_wins() -> None:
    fsm = fsm_in(S.ORBIT)
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[State | str] = []
    results_lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            outcome: State | str = fsm.begin(C.start)
        except InvalidStateError:
            outcome = "refused"
        with results_lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results.count(S.starting) == 1
    assert results.count("refused") == workers - 1
    assert fsm.state is S.starting


# A random walk compared with the model above.
_STEPS = st.lists(st.sampled_from([*Command, "complete", "fail"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_STEPS)
def test_random_walk_matches_model(steps: list[Command | str]) -> None:
    fsm = SatelliteFSM()
    model = S.NEW
    for step in steps:
        if step == "fail":
            model = fsm.fail()
            assert model is S.ERROR
        elif step == "complete":
            if model in COMPLETES_TO:
                model = COMPLETES_TO[model]
                assert fsm.complete() is model
            else:
                with pytest.raises(InvalidStateError):
                    fsm.complete()
        else:
            assert isinstance(step, Command)
            target = LEGAL.get((model, step))
            if target is None:
                with pytest.raises(InvalidStateError):
                    fsm.begin(step)
            else:
                model = target
                assert fsm.begin(step) is model
        assert fsm.state is model
