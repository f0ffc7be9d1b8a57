"""``AsyncStreamer``: the :class:`~constellation.live.streamer.Streamer` API for asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from constellation.live.accounting import SenderStats
from constellation.live.frame import Frame
from constellation.live.streamer import Streamer

__all__ = ["AsyncStreamer"]


class AsyncStreamer:
    """:class:`Streamer` for asyncio: ``await read()`` and ``async for frame in streamer``."""

    def __init__(self, group: str, senders: Iterable[str] | None = None, **kwargs: Any) -> None:
        self._streamer = Streamer(group, senders, **kwargs)

    @property
    def stats(self) -> dict[str, SenderStats]:
        return self._streamer.stats

    async def read(self, timeout: float | None = None) -> Frame | None:
        """Like :meth:`Streamer.read`, without blocking the event loop."""
        return await asyncio.to_thread(self._streamer.read, timeout)

    async def update_senders(self, names: Iterable[str] | None) -> None:
        await asyncio.to_thread(self._streamer.update_senders, names)

    async def close(self) -> None:
        await asyncio.to_thread(self._streamer.close)

    async def __aenter__(self) -> AsyncStreamer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while not self._streamer.closed:
            frame = await self.read(0.5)
            if frame is not None:
                yield frame
