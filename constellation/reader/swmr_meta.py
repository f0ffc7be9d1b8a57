"""Offline decoding: one SWMR record's meta JSON, split without a JSON parse where possible.

Our writer stores a record's meta as the tags' compact JSON with ``"block_lengths":[...]`` and
``"sequence":N`` appended as the last two members (docs/file-format.md). :func:`split_meta`
recognises that tail by hand; what is left is the JSON text of the record's tags alone, which
is the same for many records (often all of a run). :class:`TagCache` parses each distinct text
once. Meta of any other form (Constellation's writer, other key orders, ``frame_lengths``) is
parsed in full, with the same result.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

__all__ = ["LENGTH_KEYS", "MetaParts", "TagCache", "split_meta"]

#: Keys that list a record's block lengths (the second one: files of other tools).
LENGTH_KEYS = ("block_lengths", "frame_lengths")
_TAIL_KEY = b'"block_lengths":['
_NUMBER = rb"(?:0|[1-9][0-9]*)"
_TAIL = re.compile(rb'"block_lengths":\[(%s(?:,%s)*)?\],"sequence":(%s)\}' % ((_NUMBER,) * 3))
_SCALARS = (str, int, float, bool, type(None))
_CACHE_LIMIT = 4096


class MetaParts(NamedTuple):
    """A record's meta: sequence (None if absent), block lengths (None if absent), tags."""

    sequence: int | None
    lengths: list[int] | None
    tags_json: bytes | None  # the tags' JSON text when split by hand (then ``tags`` is None)
    tags: dict[str, Any] | None  # the tags, parsed in full (when ``tags_json`` is None)


def split_meta(text: bytes) -> MetaParts:
    """Split one record's meta JSON; raises ``ValueError`` for text that is no JSON object."""
    start = text.rfind(_TAIL_KEY)
    if start > 0 and (text[start - 1 : start] == b"," or start == 1):
        match = _TAIL.fullmatch(text, start)
        if match is not None and text[:1] == b"{":
            rest = text[: start - 1] + b"}" if start > 1 else b"{}"
            if b'"block_lengths"' not in rest and b'"sequence"' not in rest:
                raw = match.group(1)
                found = [int(n) for n in raw.split(b",")] if raw else []
                return MetaParts(int(match.group(2)), found, rest, None)
    tags = _parse(text)
    key = next((key for key in LENGTH_KEYS if key in tags), None)
    lengths = None if key is None else [int(n) for n in tags.pop(key)]
    sequence = tags.pop("sequence", None)
    return MetaParts(None if sequence is None else int(sequence), lengths, None, tags)


def _parse(text: bytes) -> dict[str, Any]:
    value = json.loads(text.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"record meta is no JSON object but {type(value).__name__}")
    return value


class TagCache:
    """Parsed tags by their JSON text: each distinct text is parsed once.

    :meth:`tags` returns a new dict each time (shallow copies of cached maps whose values are
    all scalars; maps holding lists or maps are parsed again, so records never share them).
    """

    def __init__(self) -> None:
        self._parsed: dict[bytes, tuple[dict[str, Any], bool]] = {}

    def tags(self, text: bytes) -> dict[str, Any]:
        entry = self._parsed.get(text)
        if entry is None:
            value = _parse(text)
            flat = all(isinstance(v, _SCALARS) for v in value.values())
            if len(self._parsed) >= _CACHE_LIMIT:
                self._parsed.clear()
            entry = self._parsed[text] = (value, flat)
            return dict(value) if flat else _parse(text)
        return dict(entry[0]) if entry[1] else _parse(text)

    def dtype_name(self, text: bytes) -> Any:
        """The ``dtype`` tag of the tags ``text`` (None without one), without a copy."""
        entry = self._parsed.get(text)
        if entry is None:
            self.tags(text)
            entry = self._parsed[text]
        return entry[0].get("dtype")
