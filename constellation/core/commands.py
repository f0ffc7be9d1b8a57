"""Core layer: the command registry that turns a CSCP request into its reply.

The requests, replies and error verbs are described in docs/protocols.md#cscp-v1-control.

A command is an explicit :class:`CommandSpec` entry: name, handler, description, typed
parameters and allowed states. :meth:`CommandRegistry.dispatch` checks a request against it,
calls the handler and builds the reply message; it never raises for a bad request. Which
exception gives which reply type is decided by one table, :data:`REPLY_TYPE_BY_ERROR`. Pure:
no sockets, and the reply time can be passed in.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from constellation.core.states import State
from constellation.errors import (
    CommandError,
    ConfigError,
    EncodeError,
    IncompleteCommandError,
    InvalidStateError,
    UnknownCommandError,
)
from constellation.protocol.common import NO_PAYLOAD, validate_wire_map
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = [
    "PARAM_TYPES",
    "REPLY_TYPE_BY_ERROR",
    "CommandRegistry",
    "CommandResult",
    "CommandSpec",
    "Param",
]

PARAM_TYPES: Final[Mapping[str, type[Any]]] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "list": list,
    "dict": dict,
    "object": object,
}
"""Parameter types by name; ``object`` accepts any value."""

REPLY_TYPE_BY_ERROR: Final[Mapping[type[BaseException], CSCPType]] = {
    InvalidStateError: CSCPType.INVALID,
    IncompleteCommandError: CSCPType.INCOMPLETE,
    ConfigError: CSCPType.INCOMPLETE,
    NotImplementedError: CSCPType.NOTIMPLEMENTED,
    UnknownCommandError: CSCPType.UNKNOWN,
}
"""Exception type → reply type (subclasses included); any other exception gives ERROR."""

_COMMAND_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_NAMES: Final[Mapping[type[Any], str]] = {kind: name for name, kind in PARAM_TYPES.items()}


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _plural(count: int) -> str:
    return f"{count} argument" if count == 1 else f"{count} arguments"


@dataclass(frozen=True)
class Param:
    """A command parameter: its name and type (a type of :data:`PARAM_TYPES` or its name)."""

    name: str
    type: type[Any] | str = object

    def __post_init__(self) -> None:
        kind = PARAM_TYPES.get(self.type) if isinstance(self.type, str) else self.type
        if kind not in _TYPE_NAMES:
            raise ValueError(f"parameter {self.name!r}: unsupported type {self.type!r}")
        object.__setattr__(self, "type", kind)

    @property
    def type_name(self) -> str:
        """``int``, ``str``, ...; as shown in help texts and errors."""
        return _TYPE_NAMES[self.type]  # type: ignore[index]

    def __str__(self) -> str:
        return f"{self.name}: {self.type_name}"

    def check(self, value: Any) -> Any:
        """``value`` if it has this type (an int becomes a float for ``float``, a tuple a list).

        Raises :class:`IncompleteCommandError` naming the parameter otherwise.
        """
        kind = self.type
        if kind is object:
            return value
        is_bool = isinstance(value, bool)
        if kind is float and isinstance(value, int | float) and not is_bool:
            return float(value)
        if kind is list and isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, kind) and (kind is bool or not is_bool):  # type: ignore[arg-type]
            return value
        raise IncompleteCommandError(
            f"argument '{self.name}': expected {self.type_name}, got {_type_name(value)}"
        )


@dataclass(frozen=True)
class CommandResult:
    """What a handler may return: reply text, optional payload and tags."""

    text: str
    payload: Any = NO_PAYLOAD
    tags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandSpec:
    """One command: name, handler, description, parameters and allowed states.

    The request payload is a list of positional arguments matching ``params``. With
    ``raw_payload`` the whole payload is the single argument, described by the one entry of
    ``params``. ``allowed_states`` None means every state.
    """

    name: str
    handler: Callable[..., Any]
    description: str
    params: Sequence[Param] = ()
    allowed_states: Iterable[State] | None = None
    raw_payload: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        if self.allowed_states is not None:
            object.__setattr__(self, "allowed_states", frozenset(self.allowed_states))
        if self.raw_payload and len(self.params) != 1:
            raise ValueError(f"command {self.name!r}: raw_payload needs exactly one parameter")

    @property
    def signature(self) -> str:
        """The parameters as ``a: int, b: str``."""
        return ", ".join(str(param) for param in self.params)

    @property
    def help(self) -> str:
        """Description plus a line about the arguments (what ``get_commands`` lists)."""
        if self.raw_payload:
            usage = f"Payload: {self.signature}."
        elif self.params:
            usage = f"Arguments: {self.signature}."
        else:
            usage = "No arguments."
        return f"{self.description.rstrip()}\n{usage}" if self.description else usage

    def allows(self, state: State) -> bool:
        """Whether the command may run in ``state``."""
        return self.allowed_states is None or state in self.allowed_states

    def arguments(self, payload: Any) -> tuple[Any, ...]:
        """The handler arguments for a request payload; IncompleteCommandError if it is wrong."""
        if self.raw_payload:
            if payload is NO_PAYLOAD:
                raise IncompleteCommandError(
                    f"command '{self.name}' requires a payload ({self.signature})"
                )
            return (self.params[0].check(payload),)
        values = self._argument_list(payload)
        return tuple(param.check(value) for param, value in zip(self.params, values, strict=True))

    def _argument_list(self, payload: Any) -> list[Any]:
        if payload is NO_PAYLOAD or payload is None:
            values: list[Any] = []
        elif isinstance(payload, list | tuple):
            values = list(payload)
        else:
            raise IncompleteCommandError(
                f"{self._takes()} as a list payload, got {_type_name(payload)}"
            )
        if len(values) != len(self.params):
            raise IncompleteCommandError(f"{self._takes()}, got {len(values)}")
        return values

    def _takes(self) -> str:
        if not self.params:
            return f"command '{self.name}' takes no arguments"
        return f"command '{self.name}' takes {_plural(len(self.params))} ({self.signature})"


class CommandRegistry:
    """The commands of one satellite, looked up case-insensitively."""

    def __init__(self, specs: Iterable[CommandSpec] = ()) -> None:
        self._specs: dict[str, CommandSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: CommandSpec) -> CommandSpec:
        """Register ``spec`` under its lower-cased name; return the stored spec.

        ValueError for a name that is not snake_case or already taken.
        """
        name = spec.name.lower()
        if not _COMMAND_NAME.match(name):
            raise ValueError(f"invalid command name {spec.name!r}: use snake_case")
        if name in self._specs:
            raise ValueError(f"command {name!r} is already registered")
        stored = dataclasses.replace(spec, name=name) if name != spec.name else spec
        self._specs[name] = stored
        return stored

    def get(self, name: str) -> CommandSpec | None:
        """The command called ``name`` (any case), or None."""
        return self._specs.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def public(self) -> dict[str, str]:
        """Name → help text of the listed commands (no leading underscore)."""
        return {name: spec.help for name, spec in self._specs.items() if not name.startswith("_")}

    def hidden(self) -> dict[str, str]:
        """Name → help text of the hidden commands (leading underscore)."""
        return {name: spec.help for name, spec in self._specs.items() if name.startswith("_")}

    def dispatch(
        self,
        request: CSCP1Message,
        state: State,
        own_name: str,
        *,
        time: msgpack.Timestamp | None = None,
    ) -> CSCP1Message:
        """Run the command of ``request`` in ``state`` and return the reply from ``own_name``.

        ``time`` is the reply timestamp (default: now). Never raises for a bad request or a
        failing handler: the error becomes the reply.
        """

        def reply(
            msg_type: CSCPType, text: str, payload: Any = NO_PAYLOAD, tags: Any = None
        ) -> CSCP1Message:
            return _reply(own_name, msg_type, text, payload, tags, time)

        if request.msg_type != CSCPType.REQUEST:
            return reply(CSCPType.ERROR, "Can only handle REQUEST messages")
        try:
            spec = self._lookup(request.verb)
            _check_state(spec, state)
            arguments = spec.arguments(request.payload)
        except CommandError as exc:
            return reply(_reply_type(exc), str(exc))
        try:
            result = spec.handler(*arguments)
        except Exception as exc:
            return reply(_reply_type(exc), _error_text(exc, spec.name))
        return reply(CSCPType.SUCCESS, *_success(result, spec.name))

    def _lookup(self, name: str) -> CommandSpec:
        spec = self.get(name) if isinstance(name, str) else None
        if spec is None:
            raise UnknownCommandError(f"Unknown command '{name}'")
        return spec


def _check_state(spec: CommandSpec, state: State) -> None:
    if spec.allows(state):
        return
    allowed = ", ".join(s.name for s in sorted(spec.allowed_states or ())) or "none"
    raise InvalidStateError(
        f"Command '{spec.name}' not allowed in state {state.name} (allowed in: {allowed})"
    )


def _reply_type(exc: BaseException) -> CSCPType:
    """Look the exception up in :data:`REPLY_TYPE_BY_ERROR` along its class hierarchy."""
    for kind in type(exc).__mro__:
        if kind in REPLY_TYPE_BY_ERROR:
            return REPLY_TYPE_BY_ERROR[kind]
    return CSCPType.ERROR


def _error_text(exc: Exception, command: str) -> str:
    message = str(exc)
    if message and _reply_type(exc) is not CSCPType.ERROR:
        return message
    text = f"{type(exc).__name__} in command '{command}'"
    return f"{text}: {message}" if message else text


def _success(result: Any, command: str) -> tuple[str, Any, Mapping[str, Any] | None]:
    """Text, payload and tags of the SUCCESS reply for a handler's return value."""
    if isinstance(result, CommandResult):
        return result.text, result.payload, result.tags
    if result is None:
        return f"Command '{command}' executed", NO_PAYLOAD, None
    value = list(result) if isinstance(result, tuple) else result
    return f"Command returned: {result}", value if _is_wire_value(value) else NO_PAYLOAD, None


def _is_wire_value(value: Any) -> bool:
    """Whether ``value`` can travel as a payload (the rules of docs/protocols.md#map-values)."""
    try:
        validate_wire_map({"payload": value})
    except EncodeError:
        return False
    return True


def _reply(
    sender: str,
    msg_type: CSCPType,
    text: str,
    payload: Any,
    tags: Mapping[str, Any] | None,
    time: msgpack.Timestamp | None,
) -> CSCP1Message:
    fields: dict[str, Any] = {
        "sender": sender,
        "msg_type": msg_type,
        "verb": text,
        "payload": payload,
        "tags": dict(tags or {}),
    }
    if time is not None:
        fields["time"] = time
    return CSCP1Message(**fields)
