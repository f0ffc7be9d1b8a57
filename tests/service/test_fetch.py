"""``/file`` served by FileSlice and read by constellation.reader.fetch (large reads)."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import httpx
import pytest

from constellation.errors import InputFileError
from constellation.reader.fetch import copy_body, open_body
from constellation.service import files
from constellation.service.app import create_app
from tests.helpers import LOOPBACK
from tests.service.support import serving, write_run

Files = tuple[Path, dict[str, Path]]


def test_whole_file_and_ranges(server: str, run_dir: Files) -> None:
    data = run_dir[1]["normal"].read_bytes()
    progress: list[int] = []
    with open_body(server, "/api/runs/run1/file", {}) as reply:
        out = io.BytesIO()
        assert reply.status == 200 and int(reply.getheader("content-length")) == len(data)
        assert copy_body(reply, out, progress.append) == len(data)
    assert out.getvalue() == data and sum(progress) == len(data)
    etag = reply.getheader("etag")
    with open_body(server, "/api/runs/run1/file", {"Range": "bytes=7-", "If-Range": etag}) as r:
        out = io.BytesIO()
        copy_body(r, out)
        assert r.status == 206 and out.getvalue() == data[7:]


def test_head_sends_headers_only(server: str, run_dir: Files) -> None:
    size = run_dir[1]["swmr"].stat().st_size
    reply = httpx.head(f"{server}/api/runs/run2/file")
    assert reply.status_code == 200 and reply.content == b""
    assert int(reply.headers["content-length"]) == size
    assert reply.headers["content-type"] == "application/x-hdf5"


def test_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of many chunks arrives whole (small chunks: many reads overlap many sends)."""
    monkeypatch.setattr(files, "CHUNK", 4096)
    path = write_run(tmp_path, "big", swmr=True, count=3000)
    with serving(create_app(tmp_path)) as url, open_body(url, "/api/runs/big/file", {}) as r:
        out = io.BytesIO()
        copy_body(r, out)
    assert out.getvalue() == path.read_bytes() and path.stat().st_size > 20 * 4096


def test_short_body_and_no_server_raise(tmp_path: Path) -> None:
    """A body that ends before Content-Length, and a refused connection: InputFileError."""
    listener = socket.create_server((LOOPBACK, 0))
    port = listener.getsockname()[1]

    def answer_short() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    thread = threading.Thread(target=answer_short)
    thread.start()
    try:
        with (
            open_body(f"http://{LOOPBACK}:{port}", "/f", {}) as reply,
            pytest.raises(InputFileError, match="body ended after 10 bytes"),
        ):
            copy_body(reply, io.BytesIO())
    finally:
        thread.join(timeout=10)
        listener.close()
    with (
        pytest.raises(InputFileError, match="cannot reach"),
        open_body(f"http://{LOOPBACK}:{port}", "/f", {}),
    ):
        pass
    with pytest.raises(InputFileError, match="http:// or https://"), open_body("ftp://x", "/", {}):
        pass
