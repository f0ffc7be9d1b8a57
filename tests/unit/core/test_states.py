"""State codes, kinds and targets (docs/state-machine.md)."""

from __future__ import annotations

import pytest

from constellation.core.states import State

# name -> (code, steady, target name), written from the spec tables.
EXPECTED = {
    "NEW": (0x10, True, "NEW"),
    "initializing": (0x12, False, "INIT"),
    "INIT": (0x20, True, "INIT"),
    "launching": (0x23, False, "ORBIT"),
    "ORBIT": (0x30, True, "ORBIT"),
    "landing": (0x32, False, "INIT"),
    "reconfiguring": (0x33, False, "ORBIT"),
    "starting": (0x34, False, "RUN"),
    "RUN": (0x40, True, "RUN"),
    "stopping": (0x43, False, "ORBIT"),
    "interrupting": (0x0E, False, "SAFE"),
    "SAFE": (0xE0, True, "SAFE"),
    "ERROR": (0xF0, True, "ERROR"),
    "DEAD": (0xFF, True, "DEAD"),
}


def test_exactly_the_specified_states() -> None:
    assert [state.name for state in State] == list(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_code_kind_and_target(name: str) -> None:
    code, steady, target = EXPECTED[name]
    state = State[name]
    assert state == code
    assert state.is_steady is steady
    assert state.target is State[target]


@pytest.mark.parametrize("name", EXPECTED)
def test_lookup_by_code_and_name(name: str) -> None:
    code = EXPECTED[name][0]
    assert State.from_code(code) is State[name]
    assert State.from_name(name) is State[name]
    assert State.from_name(name.swapcase()) is State[name]


@pytest.mark.parametrize("code", [0, 0x11, 0x31, 0x100, -1])
def test_unknown_code_is_value_error(code: int) -> None:
    with pytest.raises(ValueError, match="unknown state code"):
        State.from_code(code)


def test_bool_is_not_a_code() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        State.from_code(True)


@pytest.mark.parametrize("name", ["", "ORBITING", "run ", "0x30"])
def test_unknown_name_is_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown state name"):
        State.from_name(name)
