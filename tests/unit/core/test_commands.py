"""Command registry: specs, payload checks and the reply for every outcome.

Replies as described in docs/protocols.md#cscp-v1-control.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from constellation.core.commands import (
    REPLY_TYPE_BY_ERROR,
    CommandRegistry,
    CommandResult,
    CommandSpec,
    Param,
)
from constellation.core.states import State
from constellation.errors import (
    CommandError,
    ConfigError,
    IncompleteCommandError,
    InvalidStateError,
    UnknownCommandError,
)
from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

OWN = "Example.sat1"
TIME = msgpack.Timestamp(1_700_000_000, 5)


def request(verb: str, payload: Any = NO_PAYLOAD) -> CSCP1Message:
    return CSCP1Message("Ctrl.c1", CSCPType.REQUEST, verb, payload, {}, TIME)


class Recorder:
    """A handler that records its calls and returns a fixed value."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.result = result

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.result


def raising(exc: BaseException) -> Any:
    def handler(*args: Any) -> Any:
        raise exc

    return handler


def registry_with(spec: CommandSpec) -> CommandRegistry:
    return CommandRegistry([spec])


def dispatch(
    registry: CommandRegistry, verb: str, payload: Any = NO_PAYLOAD, state: State = State.ORBIT
) -> CSCP1Message:
    reply = registry.dispatch(request(verb, payload), state, OWN, time=TIME)
    assert reply.sender == OWN
    assert isinstance(reply.tags, dict)
    assert reply.time == TIME
    reply.encode()  # every reply must be sendable
    return reply


# --- Param ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("str", str),
        ("list", list),
        ("dict", dict),
        ("object", object),
        (float, float),
        (dict, dict),
    ],
)
def test_param_type_by_name_or_type(given: Any, expected: type) -> None:
    param = Param("x", given)
    assert param.type is expected
    assert param.type_name == expected.__name__
    assert str(param) == f"x: {expected.__name__}"


@pytest.mark.parametrize("bad", ["integer", bytes, set, 3])
def test_param_rejects_other_types(bad: Any) -> None:
    with pytest.raises(ValueError, match="unsupported type"):
        Param("x", bad)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (int, 3, 3),
        (float, 3, 3.0),
        (float, 2.5, 2.5),
        (bool, False, False),
        (str, "a", "a"),
        (list, (1, 2), [1, 2]),
        (list, [1], [1]),
        (dict, {"a": 1}, {"a": 1}),
        (object, None, None),
        (object, b"x", b"x"),
    ],
)
def test_param_accepts(kind: type, value: Any, expected: Any) -> None:
    result = Param("x", kind).check(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value", "got"),
    [
        (int, True, "bool"),
        (int, 1.0, "float"),
        (float, True, "bool"),
        (float, "1.5", "str"),
        (bool, 1, "int"),
        (str, None, "None"),
        (list, {"a": 1}, "dict"),
        (dict, [1], "list"),
    ],
)
def test_param_rejects(kind: type, value: Any, got: str) -> None:
    with pytest.raises(IncompleteCommandError) as info:
        Param("voltage", kind).check(value)
    assert str(info.value) == f"argument 'voltage': expected {kind.__name__}, got {got}"


# --- CommandSpec ----------------------------------------------------------------------------------
def test_raw_payload_needs_exactly_one_param() -> None:
    with pytest.raises(ValueError, match="exactly one parameter"):
        CommandSpec("start", Recorder(), "Start", raw_payload=True)
    with pytest.raises(ValueError, match="exactly one parameter"):
        CommandSpec("start", Recorder(), "Start", (Param("a"), Param("b")), raw_payload=True)


def test_spec_normalizes_collections() -> None:
    spec = CommandSpec("x", Recorder(), "d", [Param("a", int)], allowed_states=[State.ORBIT])
    assert spec.params == (Param("a", int),)
    assert spec.allowed_states == frozenset({State.ORBIT})


def test_help_texts() -> None:
    two = CommandSpec("x", Recorder(), "Set it. ", (Param("a", int), Param("b", str)))
    raw = CommandSpec("start", Recorder(), "Start a run", (Param("run_id", str),), raw_payload=True)
    none = CommandSpec("y", Recorder(), "")
    assert two.help == "Set it.\nArguments: a: int, b: str."
    assert raw.help == "Start a run\nPayload: run_id: str."
    assert none.help == "No arguments."


# --- registry -------------------------------------------------------------------------------------
def test_add_lower_cases_and_get_is_case_insensitive() -> None:
    registry = CommandRegistry()
    stored = registry.add(CommandSpec("Get_Temperature", Recorder(), "T"))
    assert stored.name == "get_temperature"
    assert registry.get("GET_TEMPERATURE") is stored
    assert registry.get("nope") is None
    assert "get_TEMPERATURE" in registry
    assert 3 not in registry
    assert list(registry) == ["get_temperature"]
    assert len(registry) == 1


@pytest.mark.parametrize("name", ["", "1abc", "with-dash", "has space", "dot.ted", "ümlaut"])
def test_add_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid command name"):
        CommandRegistry().add(CommandSpec(name, Recorder(), "d"))


def test_add_rejects_duplicates_in_any_case() -> None:
    registry = CommandRegistry([CommandSpec("launch", Recorder(), "d")])
    with pytest.raises(ValueError, match="already registered"):
        registry.add(CommandSpec("LAUNCH", Recorder(), "d"))


def test_public_and_hidden() -> None:
    registry = CommandRegistry(
        [
            CommandSpec("get_name", Recorder(), "Name"),
            CommandSpec("_failure", Recorder(), "Fail"),
            CommandSpec("set", Recorder(), "Set", (Param("v", float),)),
        ]
    )
    assert registry.public() == {
        "get_name": "Name\nNo arguments.",
        "set": "Set\nArguments: v: float.",
    }
    assert registry.hidden() == {"_failure": "Fail\nNo arguments."}


# --- dispatch: refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize("msg_type", [t for t in CSCPType if t is not CSCPType.REQUEST])
def test_only_requests_are_handled(msg_type: CSCPType) -> None:
    handler = Recorder()
    registry = registry_with(CommandSpec("get_name", handler, "d"))
    message = CSCP1Message("Ctrl.c1", msg_type, "get_name", NO_PAYLOAD, {}, TIME)
    reply = registry.dispatch(message, State.NEW, OWN, time=TIME)
    assert (reply.msg_type, reply.verb) == (CSCPType.ERROR, "Can only handle REQUEST messages")
    assert reply.sender == OWN
    assert handler.calls == []


def test_unknown_command() -> None:
    reply = dispatch(CommandRegistry(), "Do_Magic")
    assert (reply.msg_type, reply.verb) == (CSCPType.UNKNOWN, "Unknown command 'Do_Magic'")
    assert reply.payload is NO_PAYLOAD
    assert reply.tags == {}


def test_verb_is_case_insensitive() -> None:
    handler = Recorder("x")
    reply = dispatch(registry_with(CommandSpec("get_name", handler, "d")), "GET_Name")
    assert reply.msg_type is CSCPType.SUCCESS
    assert handler.calls == [()]


def test_state_not_allowed() -> None:
    handler = Recorder()
    spec = CommandSpec("calibrate", handler, "d", allowed_states={State.INIT, State.ORBIT})
    reply = dispatch(registry_with(spec), "calibrate", state=State.RUN)
    assert reply.msg_type is CSCPType.INVALID
    assert reply.verb == "Command 'calibrate' not allowed in state RUN (allowed in: INIT, ORBIT)"
    assert handler.calls == []
    assert dispatch(registry_with(spec), "calibrate", state=State.INIT).msg_type is CSCPType.SUCCESS


TWO_ARGS = (Param("a", int), Param("b", str))


@pytest.mark.parametrize(
    ("params", "payload", "text"),
    [
        (TWO_ARGS, [1], "command 'x' takes 2 arguments (a: int, b: str), got 1"),
        (TWO_ARGS, [1, "s", 3], "command 'x' takes 2 arguments (a: int, b: str), got 3"),
        (TWO_ARGS, NO_PAYLOAD, "command 'x' takes 2 arguments (a: int, b: str), got 0"),
        (TWO_ARGS, None, "command 'x' takes 2 arguments (a: int, b: str), got 0"),
        (
            TWO_ARGS,
            "s",
            "command 'x' takes 2 arguments (a: int, b: str) as a list payload, got str",
        ),
        (TWO_ARGS, [True, "s"], "argument 'a': expected int, got bool"),
        (TWO_ARGS, [1, 2], "argument 'b': expected str, got int"),
        ((Param("voltage", float),), ["high"], "argument 'voltage': expected float, got str"),
        ((Param("v", float),), [], "command 'x' takes 1 argument (v: float), got 0"),
        ((), [1], "command 'x' takes no arguments, got 1"),
        ((), "run1", "command 'x' takes no arguments as a list payload, got str"),
        ((), {"a": 1}, "command 'x' takes no arguments as a list payload, got dict"),
    ],
)
def test_wrong_payload_is_incomplete(params: tuple[Param, ...], payload: Any, text: str) -> None:
    handler = Recorder()
    reply = dispatch(registry_with(CommandSpec("x", handler, "d", params)), "x", payload)
    assert (reply.msg_type, reply.verb) == (CSCPType.INCOMPLETE, text)
    assert handler.calls == []


@pytest.mark.parametrize("payload", [NO_PAYLOAD, None, []])
def test_no_arguments_accepts_empty_payloads(payload: Any) -> None:
    handler = Recorder()
    reply = dispatch(registry_with(CommandSpec("launch", handler, "d")), "launch", payload)
    assert reply.msg_type is CSCPType.SUCCESS
    assert handler.calls == [()]


def test_arguments_are_passed_converted() -> None:
    handler = Recorder()
    params = (Param("v", float), Param("ch", int), Param("tags", list))
    dispatch(registry_with(CommandSpec("set", handler, "d", params)), "set", [3, 1, ["a"]])
    assert handler.calls == [(3.0, 1, ["a"])]
    assert type(handler.calls[0][0]) is float


def test_raw_payload() -> None:
    handler = Recorder(CommandResult("transitioning", "start"))
    spec = CommandSpec("start", handler, "d", (Param("run_id", str),), raw_payload=True)
    registry = registry_with(spec)
    reply = dispatch(registry, "start", "run_1")
    assert (reply.msg_type, reply.verb, reply.payload) == (
        CSCPType.SUCCESS,
        "transitioning",
        "start",
    )
    assert handler.calls == [("run_1",)]
    missing = dispatch(registry, "start")
    assert (missing.msg_type, missing.verb) == (
        CSCPType.INCOMPLETE,
        "command 'start' requires a payload (run_id: str)",
    )
    wrong = dispatch(registry, "start", ["run_1"])
    assert (wrong.msg_type, wrong.verb) == (
        CSCPType.INCOMPLETE,
        "argument 'run_id': expected str, got list",
    )
    assert len(handler.calls) == 1


def test_raw_payload_map() -> None:
    handler = Recorder()
    spec = CommandSpec("initialize", handler, "d", (Param("config", dict),), raw_payload=True)
    config = {"a": 1, "_data": {"bor_timeout": 2}}
    assert dispatch(registry_with(spec), "initialize", config).msg_type is CSCPType.SUCCESS
    assert handler.calls == [(config,)]


# --- dispatch: handler results --------------------------------------------------------------------
def test_command_result_is_used_as_is() -> None:
    result = CommandResult("ORBIT", 0x30, {"last_changed": TIME})
    reply = dispatch(registry_with(CommandSpec("get_state", Recorder(result), "d")), "get_state")
    assert (reply.msg_type, reply.verb, reply.payload) == (CSCPType.SUCCESS, "ORBIT", 0x30)
    assert reply.tags == {"last_changed": TIME}


def test_none_result() -> None:
    reply = dispatch(registry_with(CommandSpec("reset", Recorder(None), "d")), "reset")
    assert (reply.msg_type, reply.verb) == (CSCPType.SUCCESS, "Command 'reset' executed")
    assert reply.payload is NO_PAYLOAD
    assert reply.tags == {}


@pytest.mark.parametrize(
    ("value", "payload"),
    [
        (3, 3),
        (2.5, 2.5),
        (False, False),
        ("text", "text"),
        ([1, 2], [1, 2]),
        ((1, 2), [1, 2]),
        ({"a": 1, "b": [1.0]}, {"a": 1, "b": [1.0]}),
    ],
)
def test_plain_value_result(value: Any, payload: Any) -> None:
    reply = dispatch(registry_with(CommandSpec("get_x", Recorder(value), "d")), "get_x")
    assert reply.msg_type is CSCPType.SUCCESS
    assert reply.verb == f"Command returned: {value}"
    assert reply.payload == payload


@pytest.mark.parametrize("value", [object(), [1, "mixed"], [{"a": 1}], {"k": b"bin"}, 1 << 64])
def test_unsendable_value_gives_text_only(value: Any) -> None:
    reply = dispatch(registry_with(CommandSpec("get_x", Recorder(value), "d")), "get_x")
    assert reply.msg_type is CSCPType.SUCCESS
    assert reply.verb == f"Command returned: {value}"
    assert reply.payload is NO_PAYLOAD


def test_reply_time_defaults_to_now() -> None:
    registry = registry_with(CommandSpec("get_x", Recorder(), "d"))
    reply = registry.dispatch(request("get_x"), State.NEW, OWN)
    assert isinstance(reply.time, msgpack.Timestamp)
    assert reply.time != TIME


# --- dispatch: handler exceptions -----------------------------------------------------------------
class CustomNotImplemented(NotImplementedError):
    pass


@pytest.mark.parametrize(
    ("exc", "msg_type", "text"),
    [
        (
            InvalidStateError("Command 'launch' not allowed in state NEW"),
            CSCPType.INVALID,
            "Command 'launch' not allowed in state NEW",
        ),
        (IncompleteCommandError("need more"), CSCPType.INCOMPLETE, "need more"),
        (
            ConfigError("_data.bor_timeout", "expected int, got str"),
            CSCPType.INCOMPLETE,
            "key '_data.bor_timeout': expected int, got str",
        ),
        (NotImplementedError(), CSCPType.NOTIMPLEMENTED, "NotImplementedError in command 'cmd'"),
        (NotImplementedError("later"), CSCPType.NOTIMPLEMENTED, "later"),
        (CustomNotImplemented("sub"), CSCPType.NOTIMPLEMENTED, "sub"),
        (UnknownCommandError("no such mode"), CSCPType.UNKNOWN, "no such mode"),
        (ValueError("bad value"), CSCPType.ERROR, "ValueError in command 'cmd': bad value"),
        (CommandError("generic"), CSCPType.ERROR, "CommandError in command 'cmd': generic"),
        (RuntimeError(), CSCPType.ERROR, "RuntimeError in command 'cmd'"),
    ],
)
def test_handler_exception_to_reply(exc: Exception, msg_type: CSCPType, text: str) -> None:
    reply = dispatch(registry_with(CommandSpec("cmd", raising(exc), "d")), "cmd")
    assert (reply.msg_type, reply.verb) == (msg_type, text)
    assert reply.payload is NO_PAYLOAD
    assert reply.tags == {}


def test_base_exceptions_are_not_swallowed() -> None:
    registry = registry_with(CommandSpec("cmd", raising(KeyboardInterrupt()), "d"))
    with pytest.raises(KeyboardInterrupt):
        registry.dispatch(request("cmd"), State.NEW, OWN)


def test_the_error_table() -> None:
    assert dict(REPLY_TYPE_BY_ERROR) == {
        InvalidStateError: CSCPType.INVALID,
        IncompleteCommandError: CSCPType.INCOMPLETE,
        ConfigError: CSCPType.INCOMPLETE,
        NotImplementedError: CSCPType.NOTIMPLEMENTED,
        UnknownCommandError: CSCPType.UNKNOWN,
    }


def test_reply_tags_are_not_shared() -> None:
    registry = registry_with(CommandSpec("cmd", Recorder(), "d"))
    first = dispatch(registry, "cmd")
    second = dispatch(registry, "cmd")
    assert first.tags is not second.tags
