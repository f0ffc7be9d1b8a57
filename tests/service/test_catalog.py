"""The SQLite run catalog over real run files: rows, search, comments, rescans, rebuild."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from constellation.errors import UsageError
from constellation.reader.h5reader import open_run
from constellation.service.catalog import CATALOG_NAME, RunCatalog, plan
from constellation.service.catalog_search import parse_search
from constellation.service.scanner import FileStat, sha256_of
from tests.service.support import TX, TX2, Writer, make_directory, write_run


def test_plan_is_pure() -> None:
    known = {"a.h5": (10, 1), "b.h5": (20, 2), "gone.h5": (1, 1)}
    present = {
        "a.h5": FileStat("a.h5", 10, 1),
        "b.h5": FileStat("b.h5", 25, 3),
        "new.h5": FileStat("new.h5", 5, 5),
    }
    assert plan(known, present) == (["b.h5", "new.h5"], ["gone.h5"])


def test_rows_of_every_kind_of_file(tmp_path: Path) -> None:
    files = make_directory(tmp_path)
    with RunCatalog(tmp_path) as catalog:
        assert catalog.refresh() == 5
        rows = {row["run_id"]: row for row in catalog.runs(limit=None)}
    assert set(rows) == {"run1", "run2", "run3", "broken", "cut"}
    for run_id in ("run1", "run2", "run3"):
        row = rows[run_id]
        assert row["senders"] == {TX: 20, TX2: 20} and row["records"] == 40
        assert row["error"] is None and row["growing"] is False
        assert row["start"] == "2026-01-02T03:04:05Z" and row["end"] == "2026-01-02T03:14:05Z"
    assert rows["run1"]["sha256"] == sha256_of(files["normal"])
    assert rows["run2"]["condition"].startswith("ABORTED")
    assert rows["run1"]["config_digest"] == rows["run2"]["config_digest"]
    assert "truncated" in rows["cut"]["error"] and rows["cut"]["senders"] == {}
    assert rows["broken"]["error"] and rows["broken"]["sha256"] is None
    assert (tmp_path / CATALOG_NAME).is_file()


def test_rescans_only_changed_files_and_keeps_comments(tmp_path: Path) -> None:
    make_directory(tmp_path)
    with RunCatalog(tmp_path) as catalog:
        catalog.refresh()
        assert catalog.refresh() == 0  # nothing changed: nothing reopened
        catalog.set_comment("run1", "magnet quench at 03:10")
        write_run(tmp_path, "run4", swmr=False)
        os.utime(tmp_path / "data_run3.h5", ns=(1, 1))
        (tmp_path / "data_broken.h5").unlink()
        assert catalog.refresh() == 2
        ids = [row["run_id"] for row in catalog.runs(limit=None)]
        assert "broken" not in ids and "run4" in ids
        assert catalog.run("run1")["comment"] == "magnet quench at 03:10"
        assert [r["run_id"] for r in catalog.runs(where={"text": "quench"})] == ["run1"]
        catalog.set_comment("run1", "")
        assert catalog.run("run1")["comment"] is None


def test_search(tmp_path: Path) -> None:
    make_directory(tmp_path)
    with RunCatalog(tmp_path) as catalog:
        catalog.refresh()
        assert [r["run_id"] for r in catalog.runs(where={"condition": "aborted"})] == ["run2"]
        assert {r["run_id"] for r in catalog.runs(where={"text": "beam run3"})} == {"run3"}
        assert catalog.runs(where={"text": "100%"}) == []  # LIKE wildcards are literal
        assert len(catalog.runs(where={"since": "2026-01-02T03:10:00Z"})) == 3
        assert catalog.runs(where={"until": "2025-12-31"}) == []
        assert len(catalog.runs(limit=2)) == 2
        with pytest.raises(UsageError, match="unknown catalog search key 'sql'"):
            catalog.runs(where={"sql": "1=1"})


def test_rebuilt_when_deleted(tmp_path: Path) -> None:
    make_directory(tmp_path)
    with RunCatalog(tmp_path) as catalog:
        catalog.refresh()
    (tmp_path / CATALOG_NAME).unlink()
    with RunCatalog(tmp_path) as catalog:
        assert catalog.refresh() == 5
        assert len(catalog.runs(limit=None)) == 5


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        RunCatalog(tmp_path / "nope")


def test_symlink_out_of_directory_ignored(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    inside = tmp_path / "runs"
    outside.mkdir()
    inside.mkdir()
    source = write_run(outside, "secret", swmr=False)
    (inside / "data_link.h5").symlink_to(source)
    shutil.copy(source, inside / "data_copy.h5")
    with RunCatalog(inside) as catalog:
        catalog.refresh()
        assert [row["run_id"] for row in catalog.runs()] == ["copy"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"growing": "yes"}, "growing='yes': expected true or false"),
        ({"since": "yesterday"}, "since='yesterday': expected an ISO date or time"),
        ({"until": "2026-13-01"}, "until='2026-13-01': expected an ISO date or time"),
    ],
)
def test_bad_search_values_are_refused(where: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_search(where)


def test_times_compared_as_times_and_growing_runs_are_running(tmp_path: Path) -> None:
    make_directory(tmp_path)  # the closed runs ended 2026-01-02T03:14:05Z
    writer = Writer(tmp_path, "live")
    try:
        assert writer.send("write 2") == "ok 2"
        with RunCatalog(tmp_path) as catalog:
            catalog.refresh()
            ids = lambda **where: sorted(r["run_id"] for r in catalog.runs(where=where))  # noqa: E731
            assert ids(since="2026-01-02T04:14:05+01:00") == ["live", "run1", "run2", "run3"]
            assert ids(since="2026-01-02T04:14:06+01:00") == ["live"]
            assert ids(since="2026-01-02", growing="false") == ["run1", "run2", "run3"]
            assert ids(growing="1") == ["live"] and ids(growing="TRUE") == ["live"]
            assert ids(until="2026-01-02T03:04:05") == ["run1", "run2", "run3"]  # UTC
            assert ids(until="2026-01-02T03:04:04Z") == []
    finally:
        writer.stop()


def test_a_row_read_through_a_held_view_is_rescanned(tmp_path: Path) -> None:
    """Another handle of this process shows the file as it was: that row is not final."""
    writer = Writer(tmp_path, "live")
    try:
        assert writer.send("write 5") == "ok 5"
        with RunCatalog(tmp_path) as catalog:
            held = open_run(tmp_path / "data_live.h5")  # e.g. a request still reading it
            try:
                assert writer.send("write 3") == "ok 8"
                assert writer.send("eor") == "ok 8" and writer.send("close") == "ok 8"
                catalog.refresh()  # may read the held, older view
            finally:
                held.close()
            assert catalog.refresh() == 1  # not settled: read again
            row = catalog.run("live")
            assert row is not None and row["senders"][TX] == 8 and row["growing"] is False
            assert row["condition"].startswith("GOOD") and row["sha256"]
            assert catalog.refresh() == 0  # now final
    finally:
        writer.stop()


def test_an_older_database_is_rescanned(tmp_path: Path) -> None:
    path = write_run(tmp_path, "run1", swmr=False)
    with RunCatalog(tmp_path) as catalog:
        catalog.refresh()
        catalog.set_comment("run1", "keep me")
    stat = path.stat()
    db = sqlite3.connect(tmp_path / CATALOG_NAME)  # a stale row of an earlier version
    with contextlib.closing(db), db:
        db.execute(
            "UPDATE runs SET records = 1, senders = '{}', size = ?, mtime_ns = ?",
            (stat.st_size, stat.st_mtime_ns),
        )
        db.execute("PRAGMA user_version = 0")
    with RunCatalog(tmp_path) as catalog:
        assert catalog.refresh() == 1
        row = catalog.run("run1")
    assert row is not None and row["records"] == 40 and row["comment"] == "keep me"
