"""The data service's Starlette application: read-only routes over a directory of run files.

:func:`create_app` builds it (another ASGI app may mount it). Every file read runs in a worker
thread; errors answer JSON ``{"error": ..., "status": ...}`` with a 4xx status (5xx only for a
bug, still without a traceback). Routes: docs/data-service.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from constellation.errors import InputFileError, UsageError
from constellation.service.auth import TokenMiddleware
from constellation.service.catalog import WHERE_KEYS, RunCatalog
from constellation.service.catalog_search import parse_search
from constellation.service.files import FileSlice
from constellation.service.reading import FollowState, details, npy_slice, record_slice
from constellation.service.slicing import (
    BadRequest,
    check_run_id,
    check_sender,
    parse_index,
    parse_range,
)

__all__ = ["create_app"]

_REFRESH = 0.25  # seconds a catalog scan stays current for the listing
_FOLLOW_POLL = 0.02
_FOLLOW_KEEPALIVE = 15.0


def _json(value: Any, status: int = 200) -> Response:
    body = json.dumps(value, default=_plain).encode()
    return Response(body, status, media_type="application/json")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _error(status: int, message: str) -> Response:
    return _json({"error": message, "status": status}, status)


class _Service:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.catalog = RunCatalog(self.directory)

    async def refreshed(self) -> RunCatalog:
        await anyio.to_thread.run_sync(self.catalog.refresh_if_older, _REFRESH)
        return self.catalog

    async def readable(self, run_id: str) -> Path:
        """The path of a run whose file the catalog could read (else 422 with its error)."""
        path, row = await self.path(run_id)
        if row["error"]:
            raise BadRequest(422, f"run file unreadable: {row['error']}")
        return path

    async def path(self, run_id: str) -> tuple[Path, dict[str, Any]]:
        check_run_id(run_id)
        catalog = await self.refreshed()
        row = catalog.run(run_id)
        if row is None:
            raise BadRequest(404, f"no run {run_id!r}")
        path = (self.directory / row["file"]).resolve()
        if path.parent != self.directory or not path.is_file():
            raise BadRequest(404, f"no run {run_id!r}")
        return path, row

    # --- routes ---------------------------------------------------------------------------
    async def runs(self, request: Request) -> Response:
        catalog = await self.refreshed()
        return _json(await anyio.to_thread.run_sync(lambda: catalog.runs(limit=None)))

    async def search(self, request: Request) -> Response:
        params = request.query_params
        unknown = set(params) - {*WHERE_KEYS, "limit", "token"}
        if unknown:
            raise BadRequest(400, f"unknown search keys: {', '.join(sorted(unknown))}")
        where = {key: params[key] for key in WHERE_KEYS if key in params}
        limit = parse_index(params.get("limit"), "limit", 1000)
        try:
            parse_search(where)  # bad values answer 400 before any file is looked at
        except UsageError as exc:
            raise BadRequest(400, str(exc)) from exc
        catalog = await self.refreshed()
        return _json(await anyio.to_thread.run_sync(lambda: catalog.runs(limit, where)))

    async def run(self, request: Request) -> Response:
        path, row = await self.path(request.path_params["run_id"])
        if row["error"]:
            return _json({**row, "writers": {}, "senders_detail": {}})
        info = await anyio.to_thread.run_sync(details, path)
        return _json(
            {**_current(row, info), "writers": info["writers"], "senders_detail": info["senders"]}
        )

    async def records(self, request: Request) -> Response:
        path = await self.readable(request.path_params["run_id"])
        sender = check_sender(request.path_params["sender"])
        params = request.query_params
        fmt = params.get("format", "msgpack")
        if fmt not in ("msgpack", "npy"):
            raise BadRequest(400, f"unknown format {fmt!r} (msgpack or npy)")
        reader = npy_slice if fmt == "npy" else record_slice
        start, stop = params.get("start"), params.get("stop")
        body = await anyio.to_thread.run_sync(reader, path, sender, start, stop)
        media = "application/x-npy" if fmt == "npy" else "application/msgpack"
        return Response(body, media_type=media)

    async def file(self, request: Request) -> Response:
        path, _ = await self.path(request.path_params["run_id"])
        stat = os.stat(path)
        size = stat.st_size  # consistent prefix: the length when the request arrives
        etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range != etag:
            range_header = None
        try:
            span = parse_range(range_header, size)
        except BadRequest as exc:
            headers["Content-Range"] = f"bytes */{size}"
            return _with_headers(_json({"error": exc.message, "status": 416}, 416), headers)
        begin, end = span or (0, size)
        headers["Content-Length"] = str(end - begin)
        if span is not None:
            headers["Content-Range"] = f"bytes {begin}-{end - 1}/{size}"
        headers["Content-Type"] = "application/x-hdf5"
        return FileSlice(path, begin, end, 206 if span else 200, headers)

    async def follow(self, request: Request) -> Response:
        path = await self.readable(request.path_params["run_id"])
        sender = check_sender(request.path_params["sender"])
        start = parse_index(request.query_params.get("start"), "start", 0)
        state = await anyio.to_thread.run_sync(FollowState, path, sender, start)
        return StreamingResponse(
            _follow_events(state, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _current(row: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The catalog row with the counts and state of ``info``, read now (one answer, one view).

    The row may be up to a listing refresh old; for a growing file its counts lag behind.
    """
    senders = {name: detail["records"] for name, detail in info["senders"].items()}
    current = {**row, "senders": senders, "records": sum(senders.values())}
    if info["growing"]:
        current.update(growing=True, sha256=None)
    return current


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


async def _follow_events(state: FollowState, request: Request) -> AsyncIterator[str]:
    """SSE text of ``state``'s records; nothing stays open between polls (FollowState opens
    the file only for a poll), so a client going away leaves nothing to close."""
    idle = 0.0
    yield f"event: start\ndata: {json.dumps({'position': state.position})}\n\n"
    while True:
        events, ended = await anyio.to_thread.run_sync(state.poll)
        for event in events:
            yield event
        if ended:
            yield f"event: end\ndata: {json.dumps({'position': state.position})}\n\n"
            return
        if events:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        await anyio.sleep(_FOLLOW_POLL)
        idle += _FOLLOW_POLL
        if idle >= _FOLLOW_KEEPALIVE:
            idle = 0.0
            yield ": keep-alive\n\n"


def create_app(directory: str | os.PathLike[str], token: str | None = None) -> Starlette:
    """The data service over ``directory`` (raises UsageError if it is no directory)."""
    if not Path(directory).is_dir():
        raise UsageError(f"run directory {directory} does not exist")
    service = _Service(Path(directory))
    routes = [
        Route("/api/runs", service.runs),
        Route("/api/catalog", service.search),
        Route("/api/runs/{run_id}", service.run),
        Route("/api/runs/{run_id}/file", service.file),
        Route("/api/runs/{run_id}/{sender:path}/records", service.records),
        Route("/api/runs/{run_id}/{sender:path}/follow", service.follow),
    ]
    middleware = [Middleware(TokenMiddleware, token=token)] if token else []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        service.catalog.close()  # the server stops: the catalog's database closes with it

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=_handlers(service.directory),
        lifespan=lifespan,
    )
    app.state.catalog = service.catalog
    return app


def _handlers(directory: Path) -> dict[Any, Any]:
    """Exception handlers: JSON errors that never show a traceback or the server's paths."""
    prefix = str(directory) + os.sep

    def reply(status: int, message: str) -> Response:
        return _error(status, message.replace(prefix, "").replace(str(directory), "."))

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return reply(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return reply(exc.status_code, str(exc.detail))

    async def key_error(request: Request, exc: Exception) -> Response:
        return reply(404, str(exc.args[0]) if exc.args else "not found")

    async def input_error(request: Request, exc: Exception) -> Response:
        reason = exc.reason if isinstance(exc, InputFileError) else type(exc).__name__
        return reply(422, f"run file unreadable: {reason}")

    async def internal(request: Request, exc: Exception) -> Response:
        return reply(500, f"internal error ({type(exc).__name__})")

    return {
        BadRequest: bad_request,
        HTTPException: http_error,
        KeyError: key_error,
        InputFileError: input_error,
        OSError: input_error,
        Exception: internal,
    }
