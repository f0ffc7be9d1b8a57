"""A SWMR run file written by another process while the service lists, slices and follows it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from constellation.reader.remote import open_remote
from constellation.service import app as app_module
from constellation.service.app import create_app
from constellation.service.catalog import RunCatalog
from tests.helpers import wait_for
from tests.service.support import TX, Writer, serving


@pytest.fixture
def growing(tmp_path: Path) -> Iterator[tuple[str, Writer]]:
    writer = Writer(tmp_path, "live")
    try:
        with serving(create_app(tmp_path)) as url:
            yield url, writer
    finally:
        writer.stop()


def _row(url: str) -> dict:
    rows = httpx.get(f"{url}/api/runs").json()
    return next(row for row in rows if row["run_id"] == "live")


def test_growing_file_listed_sliced_and_followed(growing: tuple[str, Writer]) -> None:
    url, writer = growing
    assert writer.send("write 5") == "ok 5"
    row = wait_for(lambda: (r := _row(url))["senders"].get(TX) == 5 and r, what="5 records")
    assert row["growing"] is True and row["sha256"] is None and row["error"] is None
    got = []
    with httpx.stream("GET", f"{url}/api/runs/live/{TX}/follow?start=2", timeout=30) as stream:
        events = stream.iter_lines()
        assert next(events) == "event: start"
        for line in events:
            if line.startswith("data:") and '"sequence"' in line:
                got.append(int(line.split('"sequence": ')[1].split(",")[0]))
                if len(got) == 3:
                    assert writer.send("write 4") == "ok 9"
                if len(got) == 7:
                    assert writer.send("eor") == "ok 9"
            if line == "event: end":
                break
    assert got == list(range(3, 10))
    size = int(httpx.head(f"{url}/api/runs/live/file").headers.get("content-length", 0) or 0)
    prefix = httpx.get(f"{url}/api/runs/live/file")
    assert prefix.status_code == 200 and len(prefix.content) >= size > 0
    assert writer.send("close") == "ok 9"
    row = wait_for(lambda: (r := _row(url))["growing"] is False and r, what="closed file")
    assert row["senders"][TX] == 9 and row["sha256"] and row["condition"].startswith("GOOD")


def _open_handles(path: Path) -> int:
    """File descriptors of this process (the test runs the server in a thread) on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_growing_while_followed(growing: tuple[str, Writer], tmp_path: Path) -> None:
    """A follower's reading does not make the service take the growing file for closed."""
    url, writer = growing
    assert writer.send("write 5") == "ok 5"
    wait_for(lambda: _row(url)["senders"].get(TX) == 5, what="5 records")
    with open_remote(url, "live") as run:
        follow = run.follow(TX)
        assert next(follow).sequence == 1  # the server now follows the file
        assert writer.send("write 2") == "ok 7"  # the listing rescans the changed file
        first = wait_for(lambda: (r := _row(url))["senders"].get(TX) == 7 and r, what="rescan")
        again = _row(url)
        detail = httpx.get(f"{url}/api/runs/live").json()
        assert first["growing"] is True and first["sha256"] is None, first
        assert again["sha256"] is None and detail["growing"] is True and detail["sha256"] is None
        follow.close()


def test_stopped_follower_leaves_no_frozen_view(
    growing: tuple[str, Writer], tmp_path: Path
) -> None:
    url, writer = growing
    path = tmp_path / "data_live.h5"
    assert writer.send("write 5") == "ok 5"
    wait_for(lambda: _row(url)["senders"].get(TX) == 5, what="5 records")
    with open_remote(url, "live") as run:
        for _record in run.follow(TX):
            break  # the client stops following
    wait_for(lambda: _open_handles(path) == 0, timeout=10, what="the server closes the file")
    assert writer.send("write 3") == "ok 8"
    wait_for(lambda: _row(url)["senders"].get(TX) == 8, timeout=10, what="the row moves on")
    with open_remote(url, "live") as run:
        follow = run.follow(TX, start=5)
        assert [next(follow).sequence for _ in range(3)] == [6, 7, 8]
        follow.close()
    assert writer.send("eor") == "ok 8" and writer.send("close") == "ok 8"
    row = wait_for(lambda: (r := _row(url))["growing"] is False and r, what="closed row")
    assert row["sha256"] and row["senders"][TX] == 8 and row["condition"].startswith("GOOD")
    with RunCatalog(tmp_path) as catalog:  # what a restarted server finds in the database
        catalog.refresh()
        stored = catalog.run("live")
    assert stored is not None and stored["growing"] is False and stored["sha256"] == row["sha256"]


def test_run_details_count_once(
    growing: tuple[str, Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/api/runs/RUN`` gives one record count per sender, also while the row lags behind."""
    url, writer = growing
    assert writer.send("write 5") == "ok 5"
    wait_for(lambda: _row(url)["senders"].get(TX) == 5, what="5 records")
    monkeypatch.setattr(app_module, "_REFRESH", 3600.0)  # the row now stays as it is
    assert writer.send("write 3") == "ok 8"
    info = httpx.get(f"{url}/api/runs/live").json()
    assert info["senders"] == {name: d["records"] for name, d in info["senders_detail"].items()}
    assert info["senders"][TX] == 8 and info["records"] == 16 and info["growing"] is True
