"""MissionControl web: who may send commands.

Everyone may watch. With an operator token, a command request must carry it in the
``X-Operator-Token`` header (compared in constant time); without one, commands are accepted from
127.0.0.1 (and ::1) only.
"""

from __future__ import annotations

import hmac

__all__ = ["LOCAL_HOSTS", "TOKEN_HEADER", "check_operator"]

TOKEN_HEADER = "x-operator-token"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1"})


def check_operator(token: str | None, given: str | None, client_host: str | None) -> str | None:
    """None if the request may command, else the reason it may not (HTTP 401/403 text)."""
    if token:
        if not given:
            return "operator token missing: enter it on the page"
        if not hmac.compare_digest(token.encode(), given.encode()):
            return "operator token wrong"
        return None
    if client_host in LOCAL_HOSTS:
        return None
    return f"commands are accepted from 127.0.0.1 only (this request came from {client_host})"
