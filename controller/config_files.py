"""Controller layer: reading configuration files (TOML or YAML) with the line of every key.

:func:`read_file` parses a file and returns its content and ``line_of(dotted_key)``; parse
errors become :class:`ConfigFileError` naming file, key, line and column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from constellation.errors import ConfigError

__all__ = ["ConfigFileError", "read_file"]

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


class ConfigFileError(ConfigError):
    """A configuration file (or mapping) cannot be used.

    ``source`` names the file (``<mapping>`` for a Python mapping), ``key`` the dotted key path
    as written, ``line``/``column`` (1-based) where the problem is, when known.
    """

    def __init__(
        self,
        source: str,
        key: str,
        message: str,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        super().__init__(key, message)
        where = source
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        self.args = (f"{where}: {super().__str__()}",)

    def __str__(self) -> str:
        return str(self.args[0])


# --- positions of keys in the source text ----------------------------------------------------
class _Positions:
    """Line numbers of the keys of a file, looked up by their dotted, lower-cased path."""

    def __init__(self) -> None:
        self._lines: dict[str, list[int]] = {}
        self._entries: list[tuple[int, str]] = []  # (line, display path) in file order

    def add(self, parts: Iterable[str], line: int) -> None:
        parts = list(parts)
        self._lines.setdefault(".".join(parts).lower(), []).append(line)
        self._entries.append((line, ".".join(parts)))

    def line(self, path: str, last: bool = False, nth: int = 0) -> int | None:
        """Line of ``path`` (or of its closest enclosing section that has one).

        A key given several times (``[[array]]`` tables, duplicates) has several lines: the
        ``nth`` one is returned, or the last one with ``last``.
        """
        parts = path.lower().split(".")
        while parts:
            lines = self._lines.get(".".join(parts))
            if lines:
                return lines[-1] if last else lines[min(nth, len(lines) - 1)]
            parts.pop()
        return None

    def key_at(self, line: int) -> str:
        """The key defined on ``line``, or else the last one before it ('' if none)."""
        best = ""
        for entry_line, path in self._entries:
            if entry_line > line:
                break
            best = path
        return best


_TOML_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(text: str, pos: int) -> tuple[list[str], int]:
    """Parse a (dotted, possibly quoted) TOML key at ``pos``; returns the parts and end."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] in "\"'":
            quote = text[pos]
            end = pos + 1
            while end < len(text) and text[end] != quote:
                end += 2 if quote == '"' and text[end] == "\\" else 1
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            match = _TOML_BARE.match(text, pos)
            if match is None:
                return parts, pos
            parts.append(match.group())
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _toml_positions(text: str) -> _Positions:
    """Tolerant line scanner for TOML: table headers and ``key =`` lines."""
    positions = _Positions()
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            start = 2 if line.startswith("[[") else 1
            parts, _ = _toml_key(line, start)
            if parts:
                table = parts
                positions.add(table, number)
            continue
        parts, end = _toml_key(line, 0)
        if parts and line[end : end + 1] == "=":
            positions.add([*table, *parts], number)
    return positions


_YAML_KEY = re.compile(r"""^(\s*)(?:-\s+)?("[^"]*"|'[^']*'|[^\s#'"][^:#]*?)\s*:(?:\s|$)""")


def _yaml_line_positions(text: str) -> _Positions:
    """Tolerant indentation scanner for YAML (used when the file does not parse)."""
    positions = _Positions()
    stack: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _YAML_KEY.match(raw)
        if match is None:
            continue
        indent, key = len(match.group(1).expandtabs(8)), match.group(2).strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        positions.add([k for _, k in stack], number)
    return positions


def _yaml_node_positions(node: Any, positions: _Positions, source: str, path: list[str]) -> None:
    """Record key lines of a composed YAML node tree; reject duplicate and non-string keys."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        column = key_node.start_mark.column + 1
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = key_node.value
        dotted = ".".join([*path, str(key)])
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigFileError(source, dotted, "keys must be strings", line, column)
        # Types (level 1) may be spelled in two cases: their tables merge like TOML tables.
        seen_key = key.lower() if path else key
        if seen_key in seen:
            raise ConfigFileError(
                source,
                dotted,
                f"duplicate key (keys are case-insensitive; first given on line {seen[seen_key]})",
                line,
                column,
            )
        seen[seen_key] = line
        positions.add([*path, key], line)
        _yaml_node_positions(value_node, positions, source, [*path, key])


# --- parsing -------------------------------------------------------------------------------
def _parse_toml(text: str, source: str) -> tuple[dict[str, Any], _Positions]:
    positions = _toml_positions(text)
    try:
        return tomllib.loads(text), positions
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        column: int | None = None
        found = _TOML_POSITION.search(message)
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            message = message[: found.start()]
        elif _TOML_AT_END.search(message):
            line = max(1, len(text.splitlines()))
            message = _TOML_AT_END.sub("", message)
        key = positions.key_at(line) if line is not None else ""
        raise ConfigFileError(source, key, f"invalid TOML: {message}", line, column) from None


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], _Positions]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        context_mark = getattr(exc, "context_mark", None)
        mark = mark or context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and context_mark is not None:
            reason = f"{context} (from line {context_mark.line + 1}): {reason}"
        elif context:
            reason = f"{context}: {reason}"
        key_line = context_mark.line + 1 if context_mark is not None else line
        key = _yaml_line_positions(text).key_at(key_line) if key_line is not None else ""
        raise ConfigFileError(source, key, f"invalid YAML: {reason}", line, column) from None
    positions = _Positions()
    if data is None:
        return {}, positions
    if not isinstance(data, dict):
        raise ConfigFileError(source, "", "the top level must be a table of satellite types", 1)
    _yaml_node_positions(node, positions, source, [])
    return data, positions


def _parse_file(path: Path) -> tuple[dict[str, Any], _Positions]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(source, "", f"cannot read the file: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return _parse_toml(text, source)
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(text, source)
    raise ConfigFileError(source, "", "unknown configuration format (use .toml, .yaml or .yml)")


def read_file(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], Callable[..., int | None]]:
    """Parse a TOML or YAML file: its content and ``line_of(dotted_key, nth=0)``, the line
    of a key (of its ``nth`` occurrence for keys of ``[[array]]`` tables), or None.

    Raises :class:`ConfigFileError` (file, key, line) when the file cannot be read or parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(str(path), "", "file not found")
    raw, positions = _parse_file(path)
    return raw, positions.line
