"""MissionControl web: the Starlette application (page, stream, commands, metrics).

Routes: ``/`` and ``/static/*`` (the page and its assets, all served here), ``/api/stream``
(SSE, see :mod:`controller.web.stream`), ``/api/snapshot``, ``/api/configs`` and
``/api/config/sections``, ``/api/series``, ``/api/runs`` (GET; comments POST), and the command
endpoints ``POST /api/command``, ``/api/config/upload``, ``/api/commands/{name}`` (operators
only, see :mod:`controller.web.auth`), and ``/metrics`` for Prometheus. Bad requests get a 4xx
with ``{"error": text}``; nothing a browser sends can stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from controller.web.actions import MAX_UPLOAD, REQUEST_ERRORS, Actions
from controller.web.auth import TOKEN_HEADER, check_operator
from controller.web.backend import Backend
from controller.web.live_source import LiveSource
from controller.web.prometheus import registry_for
from controller.web.runs_source import RunsSource

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).parent / "static"
#: Largest JSON command request accepted (bytes).
MAX_REQUEST = 64 * 1024
_VERB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (ValueError) beyond ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OverflowError(f"request of {declared} bytes is more than {limit} allowed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OverflowError(f"request is more than {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    backend: Backend,
    actions: Actions,
    *,
    token: str | None = None,
    runs: RunsSource | None = None,
    live: LiveSource | None = None,
) -> Starlette:
    """The application serving ``backend``'s group."""
    registry = registry_for(backend)
    runs = runs or RunsSource(None)

    def denied(request: Request) -> JSONResponse | None:
        host = request.client.host if request.client else None
        reason = check_operator(token, request.headers.get(TOKEN_HEADER), host)
        if reason is None:
            return None
        return _error(401 if token else 403, reason)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def snapshot(request: Request) -> Response:
        return JSONResponse(backend.snapshot())

    async def stream(request: Request) -> Response:
        last = request.headers.get("last-event-id") or request.query_params.get("last_id")
        last_id = int(last) if last and last.isdigit() else None
        body = backend.hub.stream(backend.snapshot, last_id)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "token_required": bool(token),
                "runs": runs.reason,
                "live": ""
                if live is not None and live.available
                else (live.reason if live else "live data: not available"),
            }
        )

    async def configs(request: Request) -> Response:
        return JSONResponse(actions.configs())

    async def sections(request: Request) -> Response:
        try:
            return JSONResponse(
                await actions.run(actions.sections, request.query_params.get("name"))
            )
        except REQUEST_ERRORS as exc:
            return _error(400, str(exc))

    async def series(request: Request) -> Response:
        sender = request.query_params.get("sender", "")
        metric = request.query_params.get("metric", "")
        with backend.lock:
            points = backend.model.points(sender, metric)
        return JSONResponse({"sender": sender, "metric": metric, "points": points})

    async def rates(request: Request) -> Response:
        with backend.lock:
            return JSONResponse(backend.model.rates())

    async def upload(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        name = request.query_params.get("name", "")
        try:
            data = await _body(request, MAX_UPLOAD)
            key = await actions.run(actions.upload, name, data)
        except OverflowError as exc:
            return _error(413, str(exc))
        except REQUEST_ERRORS as exc:
            return _error(400, str(exc))
        return JSONResponse({"name": key})

    async def command(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        try:
            req = json.loads(await _body(request, MAX_REQUEST))
            verb, targets, args = _parse_command(req)
            if verb == "initialize":
                result = await actions.run(actions.initialize, req.get("config"), targets)
            elif verb == "reconfigure":
                result = await actions.run(actions.reconfigure, req.get("config"), targets)
            elif verb == "start":
                result = await actions.run(actions.start, req.get("run_id"), targets)
            else:
                result = await actions.run(actions.command, verb, args, targets)
        except OverflowError as exc:
            return _error(413, str(exc))
        except json.JSONDecodeError as exc:
            return _error(400, f"malformed command request: {exc}")
        except REQUEST_ERRORS as exc:
            return _error(400, str(exc))
        return JSONResponse({"replies": result})

    async def commands_of(request: Request) -> Response:
        try:
            return JSONResponse(await actions.run(actions.commands_of, request.path_params["name"]))
        except REQUEST_ERRORS as exc:
            return _error(400, str(exc))

    async def check_token(request: Request) -> Response:
        refused = denied(request)
        return refused if refused is not None else JSONResponse({"ok": True})

    async def runs_list(request: Request) -> Response:
        if not runs.available:
            return JSONResponse({"available": False, "reason": runs.reason, "runs": []})
        try:
            rows = await actions.run(runs.runs, 20)
        except Exception as exc:
            return JSONResponse({"available": False, "reason": f"runs: {exc}", "runs": []})
        return JSONResponse({"available": True, "reason": "", "runs": rows})

    async def runs_comment(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        try:
            req = json.loads(await _body(request, MAX_REQUEST))
            run_id, text = str(req["run_id"]), str(req.get("comment", ""))[:2000]
            await actions.run(runs.set_comment, run_id, text)
        except OverflowError as exc:
            return _error(413, str(exc))
        except (json.JSONDecodeError, KeyError, TypeError, LookupError, ValueError) as exc:
            return _error(400, f"comment not stored: {exc}")
        return JSONResponse({"ok": True})

    async def live_choose(request: Request) -> Response:
        sender = request.query_params.get("sender", "")
        if live is None or not live.available:
            return _error(404, live.reason if live else "live data: not available")
        if not sender or len(sender) > 128:
            return _error(400, f"live data: bad sender {sender[:128]!r}")
        live.choose(sender)
        return JSONResponse({"sender": sender})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend.hub.bind(asyncio.get_running_loop())
        yield

    routes = [
        Route("/", index),
        Route("/api/snapshot", snapshot),
        Route("/api/stream", stream),
        Route("/api/info", info),
        Route("/api/configs", configs),
        Route("/api/config/sections", sections),
        Route("/api/config/upload", upload, methods=["POST"]),
        Route("/api/series", series),
        Route("/api/rates", rates),
        Route("/api/command", command, methods=["POST"]),
        Route("/api/commands/{name}", commands_of),
        Route("/api/token", check_token, methods=["POST"]),
        Route("/api/runs", runs_list),
        Route("/api/runs/comment", runs_comment, methods=["POST"]),
        Route("/api/live", live_choose, methods=["POST"]),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _parse_command(req: Any) -> tuple[str, list[str] | None, Any]:
    """verb, targets, args of a command request; ValueError naming what is wrong."""
    if not isinstance(req, dict):
        raise ValueError("malformed command request: expected a JSON object")
    verb = req.get("verb")
    if not isinstance(verb, str) or not verb or not set(verb.lower()) <= _VERB_CHARS:
        raise ValueError(f"malformed command request: bad 'verb' {verb!r}")
    targets = req.get("targets")
    if targets is not None and (
        not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)
    ):
        raise ValueError("malformed command request: 'targets' must be a list of names")
    args = req.get("args")
    if args is not None and not isinstance(args, list):
        raise ValueError("malformed command request: 'args' must be a list")
    return verb.lower(), targets, args
