"""Pieces of the documentation that tests check: marked code blocks and quoted messages.

Marker convention (an HTML comment on the line right before a fenced block, invisible when the
page is rendered):

- ``<!-- test: doctest -->`` before a ```` ```pycon ```` block: run with :mod:`doctest`; the
  output printed, and the text of exceptions, must be exactly as shown. All doctest blocks of one
  page share one namespace, in page order. Every ``pycon`` block must carry this marker.
- ``<!-- test: run -->`` before a ```` ```python ```` block: run as a script in a fresh
  interpreter from an empty directory; it must exit with code 0.
- ``<!-- test: shell -->`` before a ```` ```console ```` block: each ``$ command`` line is run
  (without a shell; console scripts of this project are found next to the running python) and
  its output (stdout and stderr) must equal the lines that follow it, up to the next ``$``.
- ``<!-- test: file NAME -->`` before any block: the block is the file NAME, which a test of its
  own writes out and uses (e.g. ``power.py`` of docs/writing-a-satellite.md).

Quoted messages are the inline code spans of the prose that read like a message (at least three
words, not code, not a command line) and the error and warning lines of unmarked output blocks;
see :func:`quoted_messages`.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_MARKER = re.compile(r"^<!--\s*test:\s*(?P<kind>[\w-]+)(?:\s+(?P<arg>\S+))?\s*-->\s*$")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
KINDS = frozenset({"doctest", "run", "shell", "file"})


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    kind: str | None  # marker kind, None when unmarked
    arg: str | None  # marker argument (the file name of ``file``)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with the marker right before it (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{index + 1}: code block is not closed")
        marker = _MARKER.match(lines[index - 1]) if index else None
        found.append(
            Block(
                path,
                index + 1,
                fence.group("lang"),
                "\n".join(lines[index + 1 : end]) + "\n",
                marker.group("kind") if marker else None,
                marker.group("arg") if marker else None,
            )
        )
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in doc_pages() for block in blocks(page)]


def stray_markers(path: Path) -> list[str]:
    """Markers that are not directly followed by a code block, or of an unknown kind."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    for number, line in enumerate(lines, 1):
        marker = _MARKER.match(line)
        if marker is None:
            continue
        if marker.group("kind") not in KINDS:
            problems.append(f"{path.name}:{number}: unknown marker kind {marker.group('kind')!r}")
        if number == len(lines) or _FENCE.match(lines[number]) is None:
            problems.append(f"{path.name}:{number}: marker not followed by a code block")
    return problems


@dataclass(frozen=True)
class ShellStep:
    """One ``$ command`` of a shell block and the output quoted after it."""

    argv: list[str]
    expected: str


def shell_steps(block: Block) -> list[ShellStep]:
    steps: list[ShellStep] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append(ShellStep(shlex.split(line[2:]), ""))
        elif not steps:
            raise AssertionError(f"{block.where}: shell block must start with a '$ ' line")
        else:
            last = steps[-1]
            steps[-1] = ShellStep(last.argv, last.expected + line + "\n")
    return steps


# --- quoted messages ------------------------------------------------------------------------------

#: What the docs write for "some text here": ``<its status>``, ``...``, ``…``.
_DOC_WILDCARD = re.compile(r"<[^<>]+>|\.\.\.|…")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
#: Spans that start like a command line.
_COMMANDS = frozenset({"python", "make", "mount", "pip", "Controller", "Monitor"})
_SIGNATURE = re.compile(r"^[\w.\[\]\"' ]*\(.*\)(\s*->.*)?$")


@dataclass(frozen=True)
class Quote:
    """A message quoted in the docs."""

    where: str
    text: str


def _prose(text: str) -> Iterator[tuple[int, str]]:
    """(line number, paragraph) pairs of a page, fenced blocks left out."""
    paragraph: list[str] = []
    start = 0
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if not line.strip() or line.lstrip().startswith(("|", "#")):
            if paragraph:
                yield start, " ".join(paragraph)
            paragraph = []
            if line.lstrip().startswith("|"):  # a table row is a paragraph of its own
                yield number, line.replace("\\|", "|")
            continue
        if not paragraph:
            start = number
        paragraph.append(line.strip())
    if paragraph:
        yield start, " ".join(paragraph)


def _is_code(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _script_names() -> frozenset[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return frozenset(project.get("scripts", {}))


def is_message(text: str) -> bool:
    """Whether an inline code span reads like a quoted message rather than code or a command."""
    words = _DOC_WILDCARD.sub("X", text).split()
    if len(words) < 3:
        return False
    if words[0] in _COMMANDS | _script_names() or words[0].startswith(("-", "$", "[", "Satellite")):
        return False
    if re.fullmatch(r"[0-9a-f]{2}( [0-9a-f]{2})+", text):  # bytes in hex
        return False
    return not (" = " in text or _SIGNATURE.match(text) or _is_code(text))


def quoted_messages(path: Path) -> list[Quote]:
    """Message-like inline spans of the prose, and ``error:`` lines of unmarked blocks."""
    text = path.read_text(encoding="utf-8")
    quotes = [
        Quote(f"{path.name}:{number}", span.strip())
        for number, paragraph in _prose(text)
        for span in _SPAN.findall(paragraph)
        if is_message(span.strip())
    ]
    for block in blocks(path):
        if block.kind is None and block.lang == "":
            for offset, line in enumerate(block.text.splitlines(), 1):
                message = _output_message(line)
                if message:
                    quotes.append(Quote(f"{path.name}:{block.line + offset}", message))
    return quotes


#: Messages in quoted program output: ``error: ...`` lines, what follows the last ``WARNING:``,
#: ``ERROR:``, ``FAILED:`` or ``rejected:``, and the text of a WARNING or CRITICAL line of the
#: Monitor (``<time> WARNING <sender> [<topic>] <message>``).
_OUTPUT_MESSAGES = (
    re.compile(r"^(error: .*)$"),
    re.compile(r"^.*\b(?:WARNING|CRITICAL|ERROR|FAILED|rejected): (.*)$"),
    re.compile(r"^\S+ +(?:WARNING|CRITICAL) +\S+ +\[\w+\] (.*)$"),
)


def _output_message(line: str) -> str | None:
    for pattern in _OUTPUT_MESSAGES:
        match = pattern.match(line)
        if match:
            return match.group(1).strip()
    return None
