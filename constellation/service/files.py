"""The ``/file`` answer of the data service: bytes ``[begin, end)`` of a run file, streamed.

:class:`FileSlice` is an ASGI response. A worker thread reads the next chunk (``os.pread``, no
shared file position) while the event loop sends the current one, so reading and sending
overlap; at most three chunks are held (one being read, one waiting, one being sent). The
length is fixed when the request arrives (the consistent prefix of a growing file); a file that
shrank ends the body early, which the client sees as a short read. A client that goes away
stops the reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from anyio.abc import ObjectSendStream
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["CHUNK", "FileSlice"]

#: Bytes read and sent at once (larger chunks measured slower: they leave the CPU caches).
CHUNK = 2 << 20


class FileSlice(Response):
    """Send bytes ``[begin, end)`` of ``path`` with ``status`` and ``headers``."""

    def __init__(
        self, path: Path, begin: int, end: int, status: int, headers: dict[str, str]
    ) -> None:
        self.path, self.begin, self.end = path, begin, end
        self.status_code = status
        self.background = None
        self.init_headers(headers)  # headers carry Content-Length: not computed from a body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        if scope.get("method") == "HEAD" or self.begin >= self.end:  # no body to send
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        fd = await anyio.to_thread.run_sync(os.open, self.path, os.O_RDONLY)  # before the status
        try:
            await send({**start, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:
                chunks_in, chunks_out = anyio.create_memory_object_stream[bytes](1)
                group.start_soon(self._read, fd, chunks_in)
                group.start_soon(self._watch, receive, group.cancel_scope)
                async with chunks_out:
                    async for chunk in chunks_out:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()  # the body is complete: stop watching
        finally:
            os.close(fd)

    async def _read(self, fd: int, chunks: ObjectSendStream[bytes]) -> None:
        async with chunks:
            position = self.begin
            while position < self.end:
                size = min(CHUNK, self.end - position)
                chunk = await anyio.to_thread.run_sync(os.pread, fd, size, position)
                if not chunk:  # the file shrank: never happens for run files; stop short
                    return
                position += len(chunk)
                await chunks.send(chunk)

    @staticmethod
    async def _watch(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()
