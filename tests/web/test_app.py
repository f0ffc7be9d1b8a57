"""The HTTP side of MissionControl: commands, tokens, uploads, bad input, stream, /metrics."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette's note that it would prefer httpx2 to httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from controller.web.actions import MAX_UPLOAD, Actions
from controller.web.app import create_app
from tests.web.fakes import FakeBackend

LOCAL = ("127.0.0.1", 40000)
GOOD = "[Example._default]\nvalue = 3\n[Example.a]\nsample_period = 0.05\n"


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    b = FakeBackend({"Example.a": "NEW", "Example.b": "NEW"})
    yield b
    b.close()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "run.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text("[Example.a]\nsample_period = = 1\n")
    (tmp_path / "notes.txt").write_text("not offered")
    return tmp_path


def client_for(backend: FakeBackend, config_dir: Path, **kwargs: Any) -> TestClient:
    actions = Actions(backend, config_dir / "run.toml")  # type: ignore[arg-type]
    app = create_app(backend, actions, **kwargs)  # type: ignore[arg-type]
    return TestClient(app, client=kwargs.pop("client", LOCAL))


def test_page_and_assets_are_served_here(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        page = http.get("/")
        assert page.status_code == 200 and "MissionControl" in page.text
        for asset in ("/static/app.js", "/static/app.css", "/static/vendor/uPlot.iife.min.js"):
            assert http.get(asset).status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
        assert "MIT" in http.get("/static/vendor/uPlot.LICENSE").text


def test_configs_sections_and_initialize(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        assert http.get("/api/configs").json() == {
            "files": ["broken.toml", "run.toml"],
            "uploaded": [],
            "default": "run.toml",
        }
        sections = http.get("/api/config/sections", params={"name": "run.toml"}).json()
        assert sections["Example.a"] == {"sample_period": 0.05, "value": 3}
        assert sections["Example.b"] == {"value": 3}
        res = http.post("/api/command", json={"verb": "initialize", "config": "run.toml"})
        assert res.status_code == 200
        assert res.json()["replies"]["Example.a"]["type"] == "SUCCESS"
        assert backend.model.sats["Example.a"].last_reply == "SUCCESS: transitioning"


def test_configuration_error_is_a_400_naming_the_file(
    backend: FakeBackend, config_dir: Path
) -> None:
    with client_for(backend, config_dir) as http:
        res = http.post("/api/command", json={"verb": "initialize", "config": "broken.toml"})
        assert res.status_code == 400 and "broken.toml" in res.json()["error"]
        res = http.post("/api/command", json={"verb": "initialize", "config": "../etc/passwd"})
        assert res.status_code == 400 and "unknown configuration" in res.json()["error"]
        assert backend.ctl.sent == []


def test_upload(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        res = http.post("/api/config/upload", params={"name": "mine.toml"}, content=GOOD.encode())
        assert res.json() == {"name": "uploaded:mine.toml"}
        assert "uploaded:mine.toml" in http.get("/api/configs").json()["uploaded"]
        bad = http.post(
            "/api/config/upload", params={"name": "bad.toml"}, content=b"[Example.a]\nx = \n"
        )
        assert bad.status_code == 400 and "bad.toml" in bad.json()["error"]
        huge = http.post(
            "/api/config/upload", params={"name": "huge.toml"}, content=b"#" * (MAX_UPLOAD + 1)
        )
        assert huge.status_code == 413
        other = http.post("/api/config/upload", params={"name": "x.exe"}, content=b"a = 1")
        assert other.status_code == 400


def test_invalid_reply_of_a_satellite_is_shown(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        res = http.post("/api/command", json={"verb": "launch"})
        replies = res.json()["replies"]
        assert res.status_code == 200 and replies["Example.a"]["type"] == "INVALID"
        row = backend.model.sats["Example.a"]
        assert not row.reply_ok and "not allowed in state NEW" in row.last_reply


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"verb": 5}',
        b'{"verb": "la unch"}',
        b'{"verb": "launch", "targets": "Example.a"}',
        b'{"verb": "set_offset", "args": {"offset": 1}}',
        b'{"verb": "launch", "targets": ["Nobody.here"]}',
    ],
)
def test_malformed_command_requests(backend: FakeBackend, config_dir: Path, body: bytes) -> None:
    with client_for(backend, config_dir) as http:
        res = http.post("/api/command", content=body)
        assert res.status_code == 400 and res.json()["error"]
    assert backend.ctl.sent == []


def test_oversized_command_request(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        res = http.post("/api/command", content=b'{"verb": "launch", "x": "' + b"a" * 70_000)
        assert res.status_code == 413
    assert backend.ctl.sent == []


def test_custom_command_with_typed_arguments(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        listing = http.get("/api/commands/Example.a").json()
        assert {
            "name": "set_offset",
            "help": "Add an offset.\nArguments: offset: float.",
            "params": [{"name": "offset", "type": "float"}],
        } in listing
        res = http.post(
            "/api/command", json={"verb": "set_offset", "args": [1.5], "targets": ["Example.a"]}
        )
        assert res.json()["replies"]["Example.a"]["verb"] == "offset 1.5"
        assert http.get("/api/commands/Nobody.x").status_code == 400


def test_start_uses_and_advances_the_run_sequence(backend: FakeBackend, config_dir: Path) -> None:
    for name in backend.ctl.states:
        backend.ctl.states[name] = "ORBIT"
    with client_for(backend, config_dir) as http:
        http.post("/api/command", json={"verb": "start"})
        assert ("Example.a", "start", "run_1") in backend.ctl.sent
        assert backend.model.run_id == "run_1" and backend.model.next_run_id() == "run_2"


def test_token(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir, token="s3cret") as http:
        assert http.get("/api/info").json()["token_required"] is True
        missing = http.post("/api/command", json={"verb": "launch"})
        assert missing.status_code == 401 and "missing" in missing.json()["error"]
        wrong = http.post(
            "/api/command", json={"verb": "launch"}, headers={"X-Operator-Token": "x"}
        )
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
        assert http.post("/api/token", headers={"X-Operator-Token": "x"}).status_code == 401
        ok = http.post(
            "/api/command", json={"verb": "initialize"}, headers={"X-Operator-Token": "s3cret"}
        )
        assert ok.status_code == 200
        assert http.get("/api/snapshot").status_code == 200  # watching needs no token


def test_without_token_only_localhost_commands(backend: FakeBackend, config_dir: Path) -> None:
    actions = Actions(backend, config_dir / "run.toml")  # type: ignore[arg-type]
    app = create_app(backend, actions)  # type: ignore[arg-type]
    with TestClient(app, client=("10.1.2.3", 5555)) as http:
        res = http.post("/api/command", json={"verb": "initialize"})
        assert res.status_code == 403 and "127.0.0.1 only" in res.json()["error"]
        assert http.get("/api/snapshot").status_code == 200
    assert backend.ctl.sent == []


def test_prometheus_metrics(backend: FakeBackend, config_dir: Path) -> None:
    backend.model.metric("Example.a", "TX_RECORDS", 42, "", 1.0)
    backend.model.heartbeat("Example.a", 3, "DYNAMIC", None, 1.0)
    with client_for(backend, config_dir) as http:
        text = http.get("/metrics").text
    assert 'constellation_satellite_state{satellite="Example.a",state="NEW"} 16.0' in text
    assert 'constellation_heartbeat_lives{satellite="Example.a"} 3.0' in text
    assert 'constellation_tx_records{satellite="Example.a"} 42.0' in text


def test_runs_panel_without_catalog(backend: FakeBackend, config_dir: Path) -> None:
    with client_for(backend, config_dir) as http:
        res = http.get("/api/runs").json()
        assert res["available"] is False and "--data-dir" in res["reason"]
        comment = http.post("/api/runs/comment", json={"run_id": "run_1", "comment": "x"})
        assert comment.status_code == 400
