"""Download a served run file: the HTTP body straight into a file, in large reads.

:func:`open_body` sends one GET (stdlib ``http.client``, ``http`` or ``https``) and hands back
the response once its headers arrived; :func:`copy_body` moves the body into a binary file with
``readinto`` calls of :data:`READ_SIZE` bytes into one reused buffer, so no Python object is
made per network read (httpx reads 64 KiB at a time, which caps a download near 0.5 GB/s).
Connection failures and short bodies raise :class:`~constellation.errors.InputFileError`.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import urlsplit

from constellation.errors import InputFileError

__all__ = ["READ_SIZE", "copy_body", "open_body"]

#: Bytes asked of the socket per read.
READ_SIZE = 4 << 20


@contextmanager
def open_body(
    url: str, path: str, headers: dict[str, str], timeout: float = 30.0
) -> Iterator[http.client.HTTPResponse]:
    """GET ``url`` + ``path`` (``path`` with its query); yields the response, body unread."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputFileError(url, "expected an http:// or https:// service URL")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    target = parts.path.rstrip("/") + path
    try:
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise InputFileError(url + path, f"cannot reach the data service: {exc}") from exc
        yield response
    finally:
        connection.close()


def copy_body(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
    source: str = "download",
) -> int:
    """Write the body into ``out``; returns the bytes written (``progress(n)`` per read).

    ``source`` (the URL) names the download in the error raised for a body that ends short.
    """
    buffer = memoryview(bytearray(READ_SIZE))
    total = 0
    try:
        while count := response.readinto(buffer):
            out.write(buffer[:count])
            total += count
            if progress is not None:
                progress(count)
    except (OSError, http.client.HTTPException) as exc:
        raise InputFileError(source, f"body ended after {total} bytes: {exc}") from exc
    expected = response.getheader("content-length")
    if expected is not None and expected.isdigit() and int(expected) != total:
        raise InputFileError(source, f"body ended after {total} bytes of {expected}")
    return total
