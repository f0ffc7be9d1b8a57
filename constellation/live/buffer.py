"""Pure bounded buffer of a live subscriber, between its socket thread and ``read()``.

Items are kept in arrival order and bounded in bytes. The policies decide what happens when a
DATA item does not fit: ``drop-oldest`` first has the caller wait up to ``grace`` seconds for
the reader (:meth:`LiveBuffer.wait_time`; meanwhile messages wait in the socket's queue), then
discards the oldest DATA items until the reader empties the buffer; ``latest`` keeps only the
newest DATA item per sender at any time; ``block`` has the caller wait for room however long
it takes (back-pressure; :meth:`LiveBuffer.put` reports "full"). BOR and EOR items are never
dropped nor held back: they are small and the drop accounting needs them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["POLICIES", "BufferItem", "LiveBuffer", "check_policy"]

POLICIES = ("drop-oldest", "latest", "block")
#: Seconds a full ``drop-oldest`` buffer waits for the reader before discarding the oldest.
FULL_GRACE = 0.5


def check_policy(policy: str) -> str:
    """``policy`` if known; ValueError listing the choices otherwise."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (use one of: {', '.join(POLICIES)})")
    return policy


@dataclass
class BufferItem:
    """One received live message: kind, lower-cased sender, size and its frames."""

    kind: str
    sender: str
    nbytes: int
    payload: Any = None
    dropped: bool = False


class LiveBuffer:
    """Arrival-ordered items bounded by ``max_bytes`` under a slow-consumer policy."""

    def __init__(
        self, policy: str = "drop-oldest", max_bytes: int = 4 * 2**20, grace: float = FULL_GRACE
    ) -> None:
        self.policy = check_policy(policy)
        self.grace = grace
        self._full_until: float | None = None  # drop-oldest: end of the current wait
        if max_bytes <= 0:
            raise ValueError(f"buffer must be a positive number of bytes, not {max_bytes}")
        self.max_bytes = max_bytes
        self._items: deque[BufferItem] = deque()
        self._latest: dict[str, BufferItem] = {}
        self.nbytes = 0
        #: DATA items this buffer discarded (their records show up as drops when read).
        self.discarded = 0

    def __len__(self) -> int:
        return len(self._items)

    def full(self, nbytes: int) -> bool:
        """Whether an item of ``nbytes`` would exceed the bound (something is held already)."""
        return bool(self._items) and self.nbytes + nbytes > self.max_bytes

    def wait_time(self, item: BufferItem, now: float) -> float:
        """Seconds the caller should wait for :meth:`take` before putting ``item`` (0: now).

        ``block``: ``inf`` while ``item`` does not fit. ``drop-oldest``: the rest of a wait of
        ``grace`` s that began when the buffer was first found full; once it is over, 0 until
        :meth:`take` empties the buffer (the oldest are discarded meanwhile).
        """
        if item.kind != "DATA" or self.policy == "latest" or not self.full(item.nbytes):
            return 0.0
        if self.policy == "block":
            return math.inf
        if self._full_until is None:
            self._full_until = now + self.grace
        return max(0.0, self._full_until - now)

    def put(self, item: BufferItem) -> bool:
        """Add ``item``; False (nothing added) when the policy is ``block`` and it is full."""
        if item.kind != "DATA":
            self._append(item)
            return True
        if self.policy == "block":
            if self.full(item.nbytes):
                return False
            self._append(item)
            return True
        if self.policy == "latest":
            old = self._latest.get(item.sender)
            if old is not None and not old.dropped:
                self._drop(old)
            self._latest[item.sender] = item
        self._append(item)
        self._trim()
        return True

    def items(self) -> list[BufferItem]:
        """The items held, oldest first (left in the buffer)."""
        return [item for item in self._items if not item.dropped]

    def take(self) -> list[BufferItem]:
        """Everything held, oldest first; the buffer is empty afterwards."""
        items = [item for item in self._items if not item.dropped]
        self._items.clear()
        self._latest.clear()
        self.nbytes = 0
        self._full_until = None  # the next time it fills, the caller waits again
        return items

    def _append(self, item: BufferItem) -> None:
        self._items.append(item)
        self.nbytes += item.nbytes

    def _drop(self, item: BufferItem) -> None:
        item.dropped = True
        item.payload = None
        self.nbytes -= item.nbytes
        self.discarded += 1

    def _trim(self) -> None:
        """Drop the oldest DATA items until the bound holds (the newest item stays)."""
        items = self._items
        newest = items[-1]
        while self.nbytes > self.max_bytes:
            victim = next(
                (i for i in items if i.kind == "DATA" and not i.dropped and i is not newest), None
            )
            if victim is None:
                break
            self._drop(victim)
            while items and items[0].dropped:  # forget dropped ones at the front
                items.popleft()
