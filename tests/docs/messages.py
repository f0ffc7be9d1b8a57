"""The message texts the code can produce, as patterns, and whether a quoted text is one of them.

Every string literal, f-string, ``%``-format and ``str.format`` template of the framework's
source (``constellation/``, ``controller/``, ``satellites/``) becomes a pattern whose fields match
any text. A quoted message is *explained* when one pattern matches all of it, every field that took
prose (:func:`is_prose`) is itself explained (messages are built from smaller ones, e.g.
``key '{key}': {reason}``), and the template's own text (with the explained fields) makes up at
least :data:`MIN_COVERAGE` of the quote: so a quote whose inner text the code no longer prints
does not pass on the strength of an outer wrapper alone.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from tests.docs.doc_blocks import REPO

SOURCES = ("constellation", "controller", "satellites")

_FIELD = "\x00"  # stands for a formatted field while a template is assembled
_PERCENT = re.compile(r"%(?:\([\w]+\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdrifgexXc]")
_BRACES = re.compile(r"\{[^{}]*\}")
_DOC_WILDCARD = re.compile(r"<[^<>]+>|\.\.\.|…")
#: Share of a quote that must be the template's own text (not field values): a template that is
#: mostly fields, like ``{a} failed: {b}``, explains nothing on its own.
MIN_COVERAGE = 0.3


def _pieces(node: ast.AST) -> str | None:
    """The text of a string expression with every field as ``_FIELD``; None if not a string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            else:
                parts.append(_FIELD)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pieces(node.left), _pieces(node.right)
        if left is not None or right is not None:
            return (left if left is not None else _FIELD) + (right if right is not None else _FIELD)
    return None


def _templates_of(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        text = _pieces(node)
        if text is None or len(text.strip()) < 3:
            continue
        text = _PERCENT.sub(_FIELD, text).replace("%%", "%")
        yield _BRACES.sub(_FIELD, text).replace("{{", "{").replace("}}", "}")


@dataclass(frozen=True)
class Template:
    """A message template: its literal parts (fields between them) and the full-match pattern."""

    parts: tuple[str, ...]
    longest: str  # the longest literal part, tested first

    @classmethod
    def of(cls, template: str) -> Template:
        parts = tuple(template.split(_FIELD))
        return cls(parts, max(parts, key=len))

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The full-match pattern (compiled when first needed: most templates never are)."""
        return re.compile("(.+?)".join(map(re.escape, self.parts)), re.DOTALL)

    def could_match(self, text: str) -> bool:
        """Cheap test before the regex: every literal part occurs in ``text``."""
        return self.longest in text and all(part in text for part in self.parts)

    def contains(self, text: str) -> bool:
        """Whether ``text`` is a piece of some message made from this template.

        Fields inside the piece may only take values, not prose.
        """
        parts = self.parts
        if any(text in part for part in parts):
            return True
        if not any(len(word) > 3 and word in text for part in parts for word in part.split()):
            return False
        for first in range(len(parts)):
            for last in range(first + 1, len(parts)):
                middle = "(.+?)".join(map(re.escape, parts[first + 1 : last]))
                head = _any_of(parts[first][i:] for i in range(len(parts[first]) + 1))
                tail = _any_of(parts[last][:i] for i in range(len(parts[last]) + 1))
                inner = f"(.+?){middle}(.+?)" if last > first + 1 else "(.+?)"
                match = re.fullmatch(f"{head}{inner}{tail}", text, re.DOTALL)
                if match and not any(map(is_prose, match.groups())):
                    fields = sum(len(group) for group in match.groups())
                    if len(text) - fields >= MIN_COVERAGE * len(text):
                        return True
        return False


def _any_of(texts: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(t) for t in sorted(set(texts), key=len, reverse=True)) + ")"


@cache
def templates() -> tuple[Template, ...]:
    found: set[str] = set()
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*.py")):
            found.update(_templates_of(path))
    # Long literal parts first: the most specific templates are tried first.
    ordered = sorted(found, key=lambda t: -len(t.replace(_FIELD, "")))
    return tuple(Template.of(t) for t in ordered if t.replace(_FIELD, "").strip())


def is_prose(text: str) -> bool:
    """Whether a field value reads as words (three or more lower-case words), not as a value.

    Values — names, numbers, lists of names, paths — may fill a field; prose must itself be
    explained by a template.
    """
    words = [word.strip(",;:.()'\"") for word in text.split()]
    return sum(1 for word in words if re.fullmatch(r"[a-z]+", word)) >= 3


def _normalise(text: str) -> str:
    return " ".join(_DOC_WILDCARD.sub("X", text).split())


def explained(text: str, depth: int = 0) -> bool:
    """Whether the code can produce ``text`` (``<...>`` and ``...`` in it match any field)."""
    return _explained(_normalise(text), depth)


@cache
def _explained(text: str, depth: int) -> bool:
    """:func:`explained` of normalised text (the same field values recur: memoised)."""
    if depth > 6:
        return False
    for template in templates():
        if not template.could_match(text):
            continue
        match = template.pattern.fullmatch(text)
        if match is None:
            continue
        covered = len(text)
        for group in match.groups():
            if _explained(_normalise(group), depth + 1):
                continue  # a message of its own
            if is_prose(group):
                break
            covered -= len(group)  # a value: not the template's text
        else:
            if covered >= MIN_COVERAGE * len(text):
                return True
    return False


def explained_piece(text: str) -> bool:
    """Whether ``text`` is a piece of a message (quotes like ``... did not keep up ...``).

    Every run of text between the doc's wildcards must be part of one message the code makes.
    """
    pieces = [" ".join(p.split()) for p in _DOC_WILDCARD.split(text) if p.strip()]
    return all(any(t.contains(piece) for t in templates()) for piece in pieces)
