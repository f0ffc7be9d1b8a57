"""Catalog search terms: checked values, SQL clauses and the time filter (pure, no database).

Keys (:data:`WHERE_KEYS`): ``condition`` (prefix, case-insensitive), ``since`` / ``until`` (ISO
dates or times; without a time zone they are UTC), ``text`` (substring of tags or comment),
``growing`` (``true``/``false``, also ``1``/``0``). A value of the wrong form raises
:class:`~constellation.errors.UsageError` naming the key and the accepted form.

Times are compared as times, not as text: ``since`` keeps runs whose end (or, without one,
start) is at or after it, and a growing run (no EOR, so no times yet) as still running;
``until`` keeps runs that started at or before it (a run without a start time never matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from constellation.errors import UsageError

__all__ = ["WHERE_KEYS", "Search", "parse_search", "parse_time"]

WHERE_KEYS = ("condition", "since", "until", "text", "growing")
_TRUE, _FALSE = ("true", "1"), ("false", "0")
_TIME_FORM = "an ISO date or time, e.g. 2026-01-02 or 2026-01-02T03:04:05Z"


class Search(NamedTuple):
    """SQL clauses with their parameters, and the time bounds checked on the rows."""

    clauses: list[str]
    params: list[Any]
    since: datetime | None
    until: datetime | None

    def keeps(self, row: Mapping[str, Any]) -> bool:
        """True if ``row`` (``start``, ``end``, ``growing``) is within the time bounds."""
        if self.since is not None and not row["growing"]:
            last = parse_time(row["end"]) or parse_time(row["start"])
            if last is None or last < self.since:
                return False
        if self.until is not None:
            first = parse_time(row["start"])
            if first is None or first > self.until:
                return False
        return True


def parse_time(value: Any) -> datetime | None:
    """A stored time (ISO text) as an aware datetime; None if absent or not a time."""
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_search(where: Mapping[str, Any]) -> Search:
    """Check ``where`` and turn it into a :class:`Search` (UsageError for a bad key or value)."""
    clauses: list[str] = []
    params: list[Any] = []
    since = until = None
    for key, value in where.items():
        if key not in WHERE_KEYS:
            raise UsageError(f"unknown catalog search key {key!r} (known: {', '.join(WHERE_KEYS)})")
        if value is None or value == "":
            continue
        if key == "condition":
            clauses.append("condition LIKE ? ESCAPE '\\'")
            params.append(_like(str(value)) + "%")
        elif key == "text":
            clauses.append("(tags_text LIKE ? ESCAPE '\\' OR comments.text LIKE ? ESCAPE '\\')")
            params.extend(["%" + _like(str(value)) + "%"] * 2)
        elif key == "growing":
            clauses.append("growing = ?")
            params.append(int(_flag(key, value)))
        elif key == "since":
            since = _bound(key, value)
        else:
            until = _bound(key, value)
    return Search(clauses, params, since, until)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"catalog search {key}={value!r}: expected true or false (or 1 or 0)")


def _bound(key: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    when = parse_time(value)
    if when is None:
        raise UsageError(f"catalog search {key}={value!r}: expected {_TIME_FORM}")
    return when


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
