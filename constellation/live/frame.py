"""What :meth:`Streamer.read` returns: frames of records and run events, with typed blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from constellation.errors import DecodeError
from constellation.live.protocol import LiveHeader, decompress
from constellation.protocol.cdtp2 import decode_data_frame

__all__ = ["BOR", "EOR", "Frame", "LiveRecord", "decode_records", "typed_blocks"]

_UINT8 = np.dtype(np.uint8)
_DTYPES: dict[str, np.dtype[Any]] = {}


def _dtype(name: Any) -> np.dtype[Any]:
    """The numpy dtype a ``dtype`` tag names; uint8 when absent or not a plain dtype."""
    if not isinstance(name, str):
        return _UINT8
    found = _DTYPES.get(name)
    if found is None:
        try:
            found = np.dtype(name)
        except (TypeError, ValueError):
            found = _UINT8
        if found.hasobject or found.itemsize == 0:
            found = _UINT8
        if len(_DTYPES) < 256:
            _DTYPES[name] = found
    return found


def typed_blocks(tags: dict[str, Any], blocks: Any) -> list[np.ndarray[Any, Any]]:
    """Blocks as 1-D numpy arrays of the ``dtype`` tag (bytes that do not fit: uint8)."""
    dtype = _dtype(tags.get("dtype")) if tags else _UINT8
    if dtype is _UINT8:
        return [np.frombuffer(block, dtype=_UINT8) for block in blocks]
    out = []
    for block in blocks:
        if dtype.itemsize > 1 and len(block) % dtype.itemsize:
            out.append(np.frombuffer(block, dtype=_UINT8))
        else:
            out.append(np.frombuffer(block, dtype=dtype))
    return out


class LiveRecord(NamedTuple):
    """One record: sequence number, tags, blocks (numpy arrays), place in the run file."""

    sequence: int
    tags: dict[str, Any]
    blocks: list[np.ndarray[Any, Any]]
    #: Index of the record in its sender's part of the run file (H5DataWriter), else None.
    stored_index: int | None = None
    #: When the receiver published it (seconds since the epoch).
    published: float = 0.0


@dataclass(frozen=True)
class BOR:
    """A sender began a run: its BOR tags and configuration."""

    sender: str
    run_id: str
    configuration: dict[str, Any]
    user_tags: dict[str, Any]
    receiver: str = ""


@dataclass(frozen=True)
class EOR:
    """A sender ended a run: the run metadata (with ``condition``) and its EOR tags."""

    sender: str
    run_id: str
    run_metadata: dict[str, Any]
    user_tags: dict[str, Any]
    receiver: str = ""

    @property
    def condition(self) -> str:
        return str(self.run_metadata.get("condition", ""))


class Frame:
    """The records of every sender with new records since the last read, and the run events.

    ``records`` maps a sender's canonical name to its records in order; ``events`` lists the
    BOR and EOR objects in the order they were seen (relative to the records of their sender,
    a BOR comes before and an EOR after them).

    Records are decoded lazily: a frame from :meth:`Streamer.read` holds the received
    payloads, and decodes a sender's records when ``records`` or ``frame[sender]`` is first
    used. ``len(frame)``, iterating over it (the senders), :meth:`count` and :meth:`counts`
    decode nothing. A payload that does not decode is left out (see ``bad_messages``).
    """

    __slots__ = ("_decoded", "_on_bad", "_parts", "bad_messages", "events")

    def __init__(
        self,
        records: dict[str, list[LiveRecord]] | None = None,
        events: list[BOR | EOR] | None = None,
        on_bad: Callable[[], None] | None = None,
    ) -> None:
        self._decoded: dict[str, list[LiveRecord]] = records if records is not None else {}
        #: sender -> received DATA payloads not decoded yet: (header, payload, records to skip)
        self._parts: dict[str, list[tuple[LiveHeader, Any, int]]] = {}
        self._on_bad = on_bad
        self.events: list[BOR | EOR] = events if events is not None else []
        #: DATA payloads of this frame that did not decode (left out of ``records``).
        self.bad_messages = 0

    def add_data(self, sender: str, header: LiveHeader, payload: Any, skip: int) -> None:
        """Hold the records of a received DATA message from ``skip`` on (decoded on use)."""
        parts = self._parts.get(sender)
        if parts is None:
            parts = self._parts[sender] = []
            self._decoded.setdefault(sender, [])  # keeps the senders in arrival order
        parts.append((header, payload, skip))

    @property
    def records(self) -> dict[str, list[LiveRecord]]:
        """Sender -> its records in order (decodes whatever is not decoded yet)."""
        for sender in list(self._parts):
            self._decode(sender)
        return self._decoded

    def counts(self) -> dict[str, int]:
        """Sender -> number of records, without decoding them."""
        counts = {sender: len(records) for sender, records in self._decoded.items()}
        for sender, parts in self._parts.items():
            counts[sender] += sum(h.count - skip for h, _, skip in parts)
        return counts

    def count(self) -> int:
        """Number of records in the frame (nothing is decoded)."""
        return sum(self.counts().values())

    def _decode(self, sender: str) -> list[LiveRecord]:
        records = self._decoded.setdefault(sender, [])
        for header, payload, skip in self._parts.pop(sender, ()):
            try:
                records.extend(decode_records(header, payload, skip))
            except DecodeError:
                self.bad_messages += 1
                if self._on_bad is not None:
                    self._on_bad()
        return records

    def __bool__(self) -> bool:
        return bool(self._decoded or self.events)

    def __getitem__(self, sender: str) -> list[LiveRecord]:
        if sender in self._parts:
            return self._decode(sender)
        return self._decoded[sender]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded)

    def __len__(self) -> int:
        return len(self._decoded)

    def __repr__(self) -> str:
        return f"Frame(counts={self.counts()}, events={self.events!r})"


def decode_records(header: LiveHeader, payload: Any, skip: int) -> list[LiveRecord]:
    """The records of a DATA message from ``skip`` on, as LiveRecords (DecodeError if bad)."""
    message = decode_data_frame(decompress(header.codec, payload, header.size))
    records = message.records
    index = header.index
    published = header.time
    new = LiveRecord.__new__
    return [
        new(
            LiveRecord,
            sequence,
            tags,
            typed_blocks(tags, blocks),
            None if index is None else index + pos,
            published,
        )
        for pos, (sequence, tags, blocks) in enumerate(records[skip:], skip)
    ]
