"""Presentation: one look for every command's terminal output, through Rich.

Every command (satellites, ``Controller``, ``Monitor``, ``constellation-h5``) builds its
:class:`rich.console.Console` with :func:`make_console`: colours and live redraws on a
terminal, plain text (no escape codes) when the output is a pipe or a file, or when the
``NO_COLOR`` environment variable is set. States and log levels have one style each.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "LEVEL_STYLES",
    "STATE_STYLES",
    "LogLineHandler",
    "colour_wanted",
    "make_console",
    "plain_table",
    "render",
    "state_text",
]

#: Style of each state name (transitional states are bold).
STATE_STYLES = {
    "NEW": "white",
    "INIT": "cyan",
    "ORBIT": "bold blue",
    "RUN": "bold green",
    "SAFE": "bold yellow",
    "ERROR": "bold red",
    "DEAD": "red",
    "NONE": "dim",
}
#: Style of each log level name.
LEVEL_STYLES = {
    "TRACE": "dim",
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "STATUS": "green",
    "ERROR": "red",
    "CRITICAL": "bold red",
}


def colour_wanted(stream: TextIO) -> bool:
    """Colours for ``stream``: a terminal, and ``NO_COLOR`` not set."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_console(
    stream: Any = None, *, width: int | None = None, colour: bool | None = None
) -> Console:
    """A Rich console on ``stream`` (default stdout); ``colour`` None follows
    :func:`colour_wanted`. Without colour: plain text, 200 columns unless ``width``."""
    stream = sys.stdout if stream is None else stream
    colour = colour_wanted(stream) if colour is None else colour
    return Console(
        file=stream,
        force_terminal=colour,
        no_color=not colour,
        color_system="auto" if colour else None,
        highlight=False,
        emoji=False,
        soft_wrap=True,
        width=width if width is not None else (None if colour else 200),
    )


def state_text(state: str) -> Text:
    """``state`` (``~`` prefix and ``DEAD (RUN)`` forms included) in its style."""
    base = state.lstrip("~").split(" ", 1)[0].split(",", 1)[0]
    style = STATE_STYLES.get(base)
    if style is None:
        style = "bold" if base and base[0].islower() else ""
    return Text(state, style=style)


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A borderless table with a bold header: columns separated by two spaces."""
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False)
    for header in headers:
        table.add_column(header, header_style="bold", no_wrap=True, overflow="ignore")
    table.columns[-1].no_wrap = False
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return table


def render(renderable: Any, *, colour: bool = False, width: int = 200) -> str:
    """``renderable`` as a string (with escape codes only if ``colour``)."""
    console = make_console(_Discard(), width=width, colour=colour)
    with console.capture() as capture:
        console.print(renderable, end="")
    return capture.get()


class LogLineHandler(logging.Handler):
    """Log records as one line each — ``HH:MM:SS LEVEL    logger: message`` — in the level's
    style on a terminal, plain otherwise; tracebacks follow, dimmed."""

    def __init__(self, console: Console | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.console = console if console is not None else make_console(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = logging.getLevelName(record.levelno)
            style = LEVEL_STYLES.get(name, "")
            line = Text(time.strftime("%H:%M:%S", time.localtime(record.created)) + " ", "dim")
            line.append(f"{name:<8} ", style or "")
            line.append(f"{record.name}: ", "bold" if style else "")
            line.append(record.getMessage(), style if record.levelno >= logging.WARNING else "")
            if record.exc_info:
                line.append("\n" + logging.Formatter().formatException(record.exc_info), "dim")
            self.console.print(line)
        except Exception:
            self.handleError(record)


class _Discard:
    """A write-only sink (``render`` captures instead of writing)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
