"""``constellation-h5 serve | catalog | remote`` run as a user would (console script)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from constellation.service.app import create_app
from tests.helpers import LOOPBACK, console_script, wait_for
from tests.service.support import TX, Writer, free_port, make_directory, serving

H5 = console_script("constellation-h5")


def _h5(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [H5, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("served")
    make_directory(directory)
    port = free_port()
    proc = subprocess.Popen(
        [H5, "serve", str(directory), "--port", str(port), "--token", "tok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://{LOOPBACK}:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/runs", timeout=2).status_code == 401
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=30, what="constellation-h5 serve")
        yield url, directory
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_catalog_command(tmp_path: Path) -> None:
    make_directory(tmp_path)
    out = _h5("catalog", str(tmp_path), "--where", "condition=ABORTED")
    assert out.returncode == 0, out.stderr
    assert "run2" in out.stdout and "run1" not in out.stdout
    listed = _h5("catalog", str(tmp_path))
    assert "truncated" in listed.stdout and "run3" in listed.stdout
    bad = _h5("catalog", str(tmp_path), "--where", "drop=1")
    assert bad.returncode == 2 and "unknown catalog search key 'drop'" in bad.stderr


def test_remote_with_profile(served: tuple[str, Path], tmp_path: Path) -> None:
    url = served[0]
    config = tmp_path / "data.toml"
    config.write_text(f'default = "lab"\n[profiles.lab]\nurl = "{url}"\ntoken = "tok"\n')
    env = {"CONSTELLATION_DATA_CONFIG": str(config)}
    runs = _h5("remote", "runs", env=env)
    assert runs.returncode == 0, runs.stderr
    assert all(name in runs.stdout for name in ("run1", "run2", "cut"))
    ls = _h5("remote", "--profile", "lab", "ls", "run1", env=env)
    assert f"{TX}\t20 records\tnormal" in ls.stdout
    info = _h5("remote", "info", f"run2/{TX}", env=env)
    assert '"layout": "swmr"' in info.stdout
    show = _h5("remote", "show", f"run2/{TX}[3:5]", env=env)
    assert show.stdout.count("#") == 2 and "#4 tags=" in show.stdout and "#5 tags=" in show.stdout
    follow = _h5("remote", "follow", f"run3/{TX}", env=env)
    assert follow.returncode == 0 and follow.stdout.count("tags=") == 20
    denied = _h5("remote", "--server", url, "runs")
    assert denied.returncode == 2 and "401" in denied.stderr
    missing = _h5("remote", "--profile", "nope", "runs", env=env)
    assert missing.returncode == 2 and "no profile 'nope'" in missing.stderr


def test_catalog_comment_command(tmp_path: Path) -> None:
    make_directory(tmp_path)
    with serving(create_app(tmp_path)) as url:  # a running server sees the comment at once
        assert httpx.get(f"{url}/api/runs/run1").json()["comment"] is None
        done = _h5("catalog", str(tmp_path), "--comment", "run1", "  beam dump at 3 am ")
        assert done.returncode == 0 and done.stdout.strip() == "run1: comment set", done.stderr
        assert httpx.get(f"{url}/api/runs/run1").json()["comment"] == "beam dump at 3 am"
    found = _h5("catalog", str(tmp_path), "--where", "text=dump at 3", "--json")
    rows = json.loads(found.stdout)
    assert [(r["run_id"], r["comment"]) for r in rows] == [("run1", "beam dump at 3 am")]
    listed = _h5("catalog", str(tmp_path))
    assert "beam dump at 3 am" in listed.stdout
    removed = _h5("catalog", str(tmp_path), "--comment", "run1", "")
    assert removed.returncode == 0 and "removed" in removed.stdout
    rows = json.loads(_h5("catalog", str(tmp_path), "--json").stdout)
    assert [r["comment"] for r in rows if r["run_id"] == "run1"] == [None]
    unknown = _h5("catalog", str(tmp_path), "--comment", "run99", "x")
    assert unknown.returncode == 2 and "no run 'run99'" in unknown.stderr
    for bad in ("growing=yes", "since=yesterday"):
        refused = _h5("catalog", str(tmp_path), "--where", bad)
        assert refused.returncode == 2 and "expected" in refused.stderr, refused.stderr
        assert refused.stderr.startswith(f"constellation-h5: error: catalog search {bad[:5]}")


def test_download_resumes_and_verifies(served: tuple[str, Path], tmp_path: Path) -> None:
    url, directory = served
    source = (directory / "data_run2.h5").read_bytes()
    out = tmp_path / "dl"
    out.mkdir()
    part = out / "data_run2.h5.part"
    part.write_bytes(source[:1000])  # an interrupted earlier download
    etag = httpx.head(f"{url}/api/runs/run2/file?token=tok").headers["etag"]
    (out / "data_run2.h5.part.etag").write_text(etag)
    done = _h5("remote", "--server", url, "--token", "tok", "download", "run2", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "data_run2.h5").read_bytes() == source and not part.exists()
    again = _h5("remote", "--server", url, "--token", "tok", "download", "run2", "-o", str(out))
    assert again.returncode == 2 and "not overwritten" in again.stderr
    corrupt = tmp_path / "bad"
    corrupt.mkdir()
    (corrupt / "data_run1.h5.part").write_bytes(b"X" * 100)  # wrong bytes, right etag
    etag1 = httpx.head(f"{url}/api/runs/run1/file?token=tok").headers["etag"]
    (corrupt / "data_run1.h5.part.etag").write_text(etag1)
    bad = _h5("remote", "--server", url, "--token", "tok", "download", "run1", "-o", str(corrupt))
    assert bad.returncode == 2 and "sha256" in bad.stderr
    assert not (corrupt / "data_run1.h5").exists()
    assert (
        hashlib.sha256((directory / "data_run2.h5").read_bytes()).hexdigest()
        == hashlib.sha256(source).hexdigest()
    )  # read-only: the served file is untouched


def test_download_of_a_growing_run_keeps_the_part(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "dl"
    runs.mkdir()
    writer = Writer(runs, "live")
    try:
        with serving(create_app(runs)) as url:
            assert writer.send("write 5") == "ok 5"
            wait_for(lambda: _growing_row(url, "live"), what="a growing row")
            grow = _h5("remote", "--server", url, "download", "live", "-o", str(out))
            assert grow.returncode == 3, grow.stderr
            assert "still growing" in grow.stderr and "download again" in grow.stderr
            assert not (out / "data_live.h5").exists()
            assert (out / "data_live.h5.part").stat().st_size > 0
            assert writer.send("eor") == "ok 5" and writer.send("close") == "ok 5"
            wait_for(lambda: not _growing_row(url, "live"), what="the closed row")
            done = _h5("remote", "--server", url, "download", "live", "-o", str(out))
            assert done.returncode == 0, done.stderr
            source = (runs / "data_live.h5").read_bytes()
            assert (out / "data_live.h5").read_bytes() == source
            assert not (out / "data_live.h5.part").exists()
    finally:
        writer.stop()


def _growing_row(url: str, run_id: str) -> bool:
    return bool(httpx.get(f"{url}/api/runs/{run_id}").json()["growing"])


def test_serve_on_a_taken_port_names_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _h5("serve", str(tmp_path), "--host", LOOPBACK, "--port", str(port))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"constellation-h5: error: cannot listen on {LOOPBACK}:{port}: Address already in use"
    )


def test_serve_with_an_unknown_interface_is_one_line(tmp_path: Path) -> None:
    out = _h5("serve", str(tmp_path), "--host", LOOPBACK, "--port", "0", "-g", "G", "-i", "no0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("constellation-h5: error: -i no0: unknown")


def test_show_into_a_closed_pipe_exits_quietly(served: tuple[str, Path]) -> None:
    url, _ = served
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first line, like `| head -0`
    try:
        out = subprocess.run(
            [H5, "remote", "--server", url, "--token", "tok", "show", f"run1/{TX}"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert out.returncode == 141 and out.stderr == ""
