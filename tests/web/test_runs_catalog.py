"""The runs panel over HTTP against the real run catalog: run files written by the writer's
RunFile, listed with condition and record counts; an operator comment is stored in the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from constellation.service.catalog import RunCatalog
from controller.web.runs_source import RunsSource
from tests.service.support import TX, TX2, write_run
from tests.web.test_app import TestClient, backend, client_for, config_dir

__all__ = ["backend", "config_dir"]  # fixtures used here


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[RunsSource]:
    data = tmp_path / "data"
    data.mkdir()
    write_run(data, "run1", swmr=False, count=7)
    write_run(data, "run2", swmr=True, count=3, condition="ABORTED")
    source = RunsSource(data)
    yield source
    source.close()


def test_runs_listed_and_commented_through_the_page_api(
    backend: object, config_dir: Path, runs: RunsSource
) -> None:
    client: TestClient = client_for(backend, config_dir, runs=runs)  # type: ignore[arg-type]
    listed = client.get("/api/runs").json()
    assert listed["available"] is True
    by_id = {row["run_id"]: row for row in listed["runs"]}
    assert set(by_id) == {"run1", "run2"}
    assert by_id["run1"]["senders"] == {TX: 7, TX2: 7} and by_id["run1"]["records"] == 14
    assert by_id["run1"]["condition"].startswith("GOOD")
    assert "ABORTED" in by_id["run2"]["condition"]

    reply = client.post("/api/runs/comment", json={"run_id": "run2", "comment": "beam lost"})
    assert reply.status_code == 200, reply.text
    rows = {row["run_id"]: row for row in client.get("/api/runs").json()["runs"]}
    assert rows["run2"]["comment"] == "beam lost" and rows["run1"]["comment"] == ""
    # stored in the catalog itself, not in the page: a fresh catalog on the directory sees it
    assert runs.catalog is not None
    with RunCatalog(runs.catalog.directory) as fresh:
        stored = {row["run_id"]: row["comment"] for row in fresh.runs(10)}
    assert stored["run2"] == "beam lost"

    bad = client.post("/api/runs/comment", json={"comment": "no run"})
    assert bad.status_code == 400 and "comment not stored" in bad.json()["error"]


def test_comment_needs_the_operator_token(
    backend: object, config_dir: Path, runs: RunsSource
) -> None:
    client: TestClient = client_for(backend, config_dir, runs=runs, token="s3cret")  # type: ignore[arg-type]
    refused = client.post("/api/runs/comment", json={"run_id": "run1", "comment": "x"})
    assert refused.status_code == 401
    accepted = client.post(
        "/api/runs/comment",
        json={"run_id": "run1", "comment": "ok"},
        headers={"X-Operator-Token": "s3cret"},
    )
    assert accepted.status_code == 200, accepted.text
