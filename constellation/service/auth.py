"""Token check of the data service: an ASGI middleware answering 401 without the token.

The token comes as ``Authorization: Bearer <token>`` or as the query parameter ``token``
(for browsers' EventSource). Compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TokenMiddleware", "token_ok"]


def token_ok(token: str, authorization: str | None, query: str) -> bool:
    """True if the request carries ``token`` (pure)."""
    bearer = authorization[7:].strip() if authorization else ""
    if authorization and authorization.startswith("Bearer ") and _same(bearer, token):
        return True
    return any(_same(value, token) for value in parse_qs(query).get("token", []))


class TokenMiddleware:
    """Refuse every HTTP request without the token (401, JSON error)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        query = scope.get("query_string", b"").decode("latin-1")
        if token_ok(self.token, authorization, query):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong token", "status": 401}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())
