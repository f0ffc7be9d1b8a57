"""Pure request parsing of the data service: run identifiers, record slices, HTTP byte ranges.

Every function raises :class:`BadRequest` (with the HTTP status to answer) for hostile or
malformed input; nothing here touches files.
"""

from __future__ import annotations

import re

from constellation.errors import ConstellationError

__all__ = [
    "MAX_SLICE",
    "BadRequest",
    "check_run_id",
    "check_sender",
    "parse_index",
    "parse_range",
    "parse_slice",
    "run_id_of",
]

#: Most records one slice request may return.
MAX_SLICE = 100_000
_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_SENDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}$")
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


class BadRequest(ConstellationError):
    """A request the service refuses: ``status`` is the HTTP status, ``message`` the reason."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def run_id_of(file_name: str) -> str:
    """The run identifier of a run file name: ``data_<id>.h5`` → ``<id>`` (else the stem)."""
    stem = file_name[:-3] if file_name.endswith(".h5") else file_name
    return stem[5:] if stem.startswith("data_") and len(stem) > 5 else stem


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain identifier (no separators, no ``..``); else 404."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise BadRequest(404, f"no run {run_id!r}")
    return run_id


def check_sender(sender: str) -> str:
    """``sender`` if it can be a sender name (``Type.Name`` or ``writer/Type.Name``); else 404."""
    if not _SENDER.match(sender) or ".." in sender:
        raise BadRequest(404, f"no sender {sender!r}")
    return sender


def parse_index(text: str | None, name: str, default: int | None) -> int | None:
    """A non-negative integer query parameter ``name`` (``default`` when absent or empty)."""
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadRequest(400, f"query parameter {name!r} must be a non-negative integer")
    return int(text)


def parse_slice(start: str | None, stop: str | None, count: int) -> tuple[int, int]:
    """Record positions ``[start, stop)`` clipped to ``count`` records (at most MAX_SLICE)."""
    first = parse_index(start, "start", 0)
    last = parse_index(stop, "stop", None)
    assert first is not None
    if last is None:
        last = min(count, first + MAX_SLICE)
    if last < first:
        raise BadRequest(400, f"bad slice: stop {last} < start {first}")
    if last - first > MAX_SLICE:
        raise BadRequest(400, f"slice of {last - first} records exceeds {MAX_SLICE}")
    return min(first, count), min(last, count)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Byte range ``[begin, end)`` of a ``Range: bytes=a-b`` header (None: whole file).

    One range only; ``bytes=-n`` is the last n bytes. Unsatisfiable or malformed ranges give
    416 (the caller answers with ``Content-Range: bytes */size``).
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        raise BadRequest(416, f"unsupported Range {header[:80]!r}")
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            raise BadRequest(416, "empty suffix range")
        return max(0, size - length), size
    begin = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if begin >= size or end <= begin:
        raise BadRequest(416, f"range {header[:80]!r} outside the {size} bytes")
    return begin, end
