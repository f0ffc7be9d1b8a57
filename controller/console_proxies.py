"""Controller layer: the console's proxies of the group, a type and a satellite.

``constellation.<Type>.<Name>.<command>(...)`` reads as calls on these proxies: each offers
the commands its satellites list (``get_commands``, fetched through the console's
:class:`~controller.console.Session`) as methods with their descriptions as help, and
completes names in ``dir``. A name that matches nothing raises
:class:`~controller.console_output.UnknownNameError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.console_output import ReplyMap, UnknownNameError
from controller.handles import Reply

if TYPE_CHECKING:
    from controller.console import Session

__all__ = ["GroupProxy", "SatelliteProxy", "TypeProxy"]

#: The signature help shows for every command: ``(*args)``.
_ARGS = inspect.Signature([inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)])


def _make_command(name: str, doc: str, call: Callable[..., Any], owner: str) -> Callable[..., Any]:
    """A function named ``name`` with ``doc`` as its help text that forwards to ``call``."""

    def command(*args: Any) -> Any:
        return call(name, args)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    command.__module__ = owner  # shown by help(): "function set_offset in module Example.a"
    command.__signature__ = _ARGS  # type: ignore[attr-defined]
    return command


class SatelliteProxy:
    """One satellite: its commands as methods (``get_state()``, ``set_offset(1.5)``, ...)."""

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self._name = name

    def _call(self, verb: str, args: tuple[Any, ...]) -> Reply:
        replies = self._session.send(verb, args, [self._name])
        if self._name not in replies:
            raise LookupError(f"{self._name} is no longer in the group")
        return replies[self._name]

    def __dir__(self) -> list[str]:
        return sorted(self._session.commands(self._name))

    def __getattr__(self, attr: str) -> Callable[..., Reply]:
        if attr.startswith("__"):
            raise AttributeError(attr)
        commands = self._session.commands(self._name)
        lowered = {c.lower(): c for c in commands}
        if attr.lower() in lowered:
            name = lowered[attr.lower()]
            return _make_command(name, commands[name], self._call, self._name)
        if attr.startswith("_"):  # hidden commands are not listed, but can be sent
            doc = f"Hidden command '{attr}' of {self._name}."
            return _make_command(attr, doc, self._call, self._name)
        raise UnknownNameError(f"{self._name} has no command '{attr}'", attr, commands)

    def __repr__(self) -> str:
        state = self._session.ctl.states.get(self._name, "?")
        return f"<{self._name}: {state}>"


class TypeProxy:
    """All satellites of one type: ``.<Name>`` for one of them, commands for all of them."""

    def __init__(self, session: Session, type_name: str) -> None:
        self._session = session
        self._type = type_name

    def _members(self) -> dict[str, str]:
        """Name part (as spelled) -> canonical name, for the satellites of this type."""
        return {
            n.partition(".")[2]: n
            for n in sorted(self._session.ctl.satellites)
            if n.partition(".")[0].lower() == self._type.lower()
        }

    def _call(self, verb: str, args: tuple[Any, ...]) -> ReplyMap:
        return self._session.send(verb, args, list(self._members().values()))

    def __dir__(self) -> list[str]:
        members = self._members()
        return sorted(members) + list(self._session.common_commands(members.values()))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        members = self._members()
        for short, name in members.items():
            if short.lower() == attr.lower():
                return SatelliteProxy(self._session, name)
        commands = self._session.common_commands(members.values())
        lowered = {c.lower(): c for c in commands}
        if attr.lower() in lowered:
            name = lowered[attr.lower()]
            return _make_command(name, commands[name], self._call, self._type)
        raise UnknownNameError(
            f"no satellite or common command '{attr}' of type {self._type}",
            attr,
            [*members, *self._session.common_commands(members.values())],
        )

    def __getitem__(self, name: str) -> SatelliteProxy:
        return self.__getattr__(name)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        states = self._session.ctl.states
        members = ", ".join(f"{n}: {states.get(c, '?')}" for n, c in self._members().items())
        return f"<{self._type}: {members or 'no satellites'}>"


class GroupProxy:
    """The whole group: ``.<Type>`` for a type, commands for every satellite."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _types(self) -> dict[str, str]:
        return {
            n.partition(".")[0].lower(): n.partition(".")[0] for n in self._session.ctl.satellites
        }

    def _call(self, verb: str, args: tuple[Any, ...]) -> ReplyMap:
        return self._session.send(verb, args, sorted(self._session.ctl.satellites))

    def __dir__(self) -> list[str]:
        names = sorted(self._session.ctl.satellites)
        return sorted(self._types().values()) + list(self._session.common_commands(names))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        types = self._types()
        if attr.lower() in types:
            return TypeProxy(self._session, types[attr.lower()])
        commands = self._session.common_commands(sorted(self._session.ctl.satellites))
        lowered = {c.lower(): c for c in commands}
        if attr.lower() in lowered:
            name = lowered[attr.lower()]
            return _make_command(name, commands[name], self._call, self._session.ctl.group)
        raise UnknownNameError(
            f"no satellite type or command '{attr}' in the group",
            attr,
            [*types.values(), *commands],
        )

    def __getitem__(self, name: str) -> Any:
        """``constellation["Example.a"]`` or ``constellation["Example"]``."""
        type_name, _, sat = name.partition(".")
        proxy = self.__getattr__(type_name)
        return proxy[sat] if sat else proxy

    def __repr__(self) -> str:
        view = self._session.view
        count, state = view.summary()
        return f"<group {self._session.ctl.group}: {count} satellites, {state}>"
