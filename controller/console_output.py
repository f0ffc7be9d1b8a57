"""Controller layer: what the console shows — replies, and mistakes as one line.

:class:`ConsoleReply` and :class:`ReplyMap` give one satellite's reply and a group's replies the
same look (``Type.Name: SUCCESS: verb``); :class:`UnknownNameError` suggests the closest names;
:func:`one_line` is how the console prints the errors in :data:`ONE_LINE_ERRORS`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pprint import pformat
from typing import Any

from constellation.errors import ConstellationError
from controller.controller import Reply

__all__ = [
    "ONE_LINE_ERRORS",
    "ConsoleError",
    "ConsoleReply",
    "ReplyMap",
    "UnknownNameError",
    "one_line",
]


#: Commands whose reply payload repeats the verb in another form (the state code): not shown.
_QUIET_PAYLOAD = frozenset({"get_state"})


@dataclass(frozen=True, repr=False)
class ConsoleReply(Reply):
    """A :class:`Reply` shown as ``Type.Name: SUCCESS: verb`` (plus the payload, if any).

    A satellite's reply and each line of a group's replies look the same.
    """

    name: str = ""
    command: str = ""

    @classmethod
    def of(cls, reply: Reply, name: str = "", command: str = "") -> ConsoleReply:
        return cls(reply.msg_type, reply.verb, reply.payload, reply.tags, name, command)

    def __repr__(self) -> str:
        text = f"{self.name + ': ' if self.name else ''}{self.msg_type.name}: {self.verb}"
        if self.payload is None or self.command in _QUIET_PAYLOAD:
            return text
        shown = pformat(self.payload, sort_dicts=False)
        return (
            f"{text} {shown}"
            if "\n" not in shown and len(text + shown) < 100
            else (f"{text}\n{shown}")
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class ReplyMap(dict[str, Reply]):
    """Replies by satellite name, shown one per line."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.values())

    def __repr__(self) -> str:
        return "\n".join(repr(self[name]) for name in sorted(self)) or "(no satellites)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class ConsoleError(ConstellationError):
    """A mistake typed in the console: shown as one line, without a traceback."""


class UnknownNameError(ConsoleError, AttributeError):
    """An unknown satellite, type or command; the message suggests the closest names."""

    def __init__(self, message: str, name: str, candidates: Iterable[str]) -> None:
        close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
        if not close:  # case-insensitive second chance ("exampel" -> "Example")
            lowered = {c.lower(): c for c in candidates}
            close = [lowered[c] for c in difflib.get_close_matches(name.lower(), lowered, n=3)]
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        super().__init__(message + hint)


#: Errors the console shows as one line (``%tb`` in IPython still shows the traceback).
ONE_LINE_ERRORS: tuple[type[BaseException], ...] = (
    ConstellationError,
    AttributeError,
    LookupError,
    TimeoutError,
    TypeError,
    ValueError,
)


def one_line(exc: BaseException) -> str:
    """``TypeName: message`` of a console mistake, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
