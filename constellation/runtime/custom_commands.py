"""Runtime: declared user commands — :class:`CustomCommand` to a registry entry.

A satellite class lists :class:`CustomCommand` declarations; the method of the same name is the
handler. Their replies are computed in the command worker (see ``runtime.requests``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from constellation.core.commands import CommandSpec, Param
from constellation.core.states import State
from constellation.errors import CommandDefinitionError

__all__ = ["CustomCommand", "custom_command_specs"]


@dataclass(frozen=True)
class CustomCommand:
    """Declaration of a user command: the method of the same name is its handler."""

    name: str
    description: str
    params: tuple[tuple[str, type], ...] = ()
    allowed_states: frozenset[State] | None = None


def custom_command_specs(owner: object, declared: Iterable[CustomCommand]) -> list[CommandSpec]:
    """Registry entries for ``declared``, bound to the methods of ``owner``.

    Raises :class:`CommandDefinitionError` (a ``TypeError``) naming a command without method.
    """
    specs = []
    for command in declared:
        handler = getattr(owner, command.name, None)
        if not callable(handler):
            raise CommandDefinitionError(
                f"{type(owner).__name__} declares command '{command.name}' "
                "but has no method of that name"
            )
        params = tuple(Param(n, t) for n, t in command.params)
        specs.append(
            CommandSpec(command.name, handler, command.description, params, command.allowed_states)
        )
    return specs
