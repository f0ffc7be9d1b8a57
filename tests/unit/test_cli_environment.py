"""The launchers check the CONSTELLATION_* knobs before they build or start anything, and pass
them on as settings."""

from __future__ import annotations

import pytest

from constellation import cli
from constellation.core.environment import ProcessSettings
from constellation.satellite import Satellite
from controller import cli as controller_cli


class Probe(Satellite):
    """Records whether the launcher got as far as building a satellite."""

    built = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        type(self).built = True
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [("CONSTELLATION_HEARTBEAT_SCALE", "fast"), ("CONSTELLATION_METRIC_SCALE", "-1")],
)
def test_malformed_knob_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    Probe.built = False
    code = cli.run_satellite(Probe, ["-g", "nogroup", "-n", "p", "-i", "127.0.0.1"])
    assert code == 2 and not Probe.built
    message = capsys.readouterr().err
    assert name in message and repr(value) in message


def test_help_with_a_malformed_knob_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONSTELLATION_HEARTBEAT_SCALE", "x")
    assert cli.run_satellite(Probe, ["--help"]) == 2
    assert "CONSTELLATION_HEARTBEAT_SCALE" in capsys.readouterr().err


class Recorder(Satellite):
    """Records the settings the launcher built it with, then stops the launch (no sockets)."""

    settings: ProcessSettings | None = None

    def __init__(self, *args: object, settings: ProcessSettings, **kwargs: object) -> None:
        type(self).settings = settings
        raise TypeError("recorded")


FAST = {
    "CONSTELLATION_HEARTBEAT_SCALE": "0.2",
    "CONSTELLATION_METRIC_SCALE": "0.05",
    "CONSTELLATION_MAX_MESSAGE_SIZE": "65536",
    "CONSTELLATION_MALLOC_TUNING": "0",
}
EXPECTED = ProcessSettings(0.2, 0.05, 65536, malloc_tuning=False)


def _set(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_satellite_launcher_passes_the_knobs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, FAST)
    tuned: list[ProcessSettings] = []
    # Process-wide steps of a real launch: not in the test process.
    monkeypatch.setattr(cli, "setup_logging", lambda level: None)
    monkeypatch.setattr(cli, "apply_process_tuning", tuned.append)
    Recorder.settings = None
    assert cli.run_satellite(Recorder, ["-g", "nogroup", "-n", "r", "-i", "127.0.0.1"]) == 2
    assert Recorder.settings == EXPECTED and tuned == [EXPECTED]


class FakeController:
    """Stands in for the Controller the console script builds: records its settings."""

    settings: ProcessSettings | None = None

    def __init__(self, *args: object, settings: ProcessSettings, **kwargs: object) -> None:
        type(self).settings = settings
        raise OSError("recorded")


def test_controller_launcher_passes_the_knobs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, FAST)
    monkeypatch.setattr(controller_cli, "setup_logging", lambda level: None)
    monkeypatch.setattr(controller_cli, "Controller", FakeController)
    FakeController.settings = None
    assert controller_cli.main(["-g", "nogroup", "-i", "127.0.0.1", "status"]) == 2
    assert FakeController.settings == EXPECTED


def test_controller_launcher_refuses_a_malformed_knob(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONSTELLATION_MAX_MESSAGE_SIZE", "huge")
    monkeypatch.setattr(controller_cli, "Controller", FakeController)
    FakeController.settings = None
    assert controller_cli.main(["-g", "nogroup", "-i", "127.0.0.1", "status"]) == 2
    assert FakeController.settings is None  # refused before anything was built
    assert "CONSTELLATION_MAX_MESSAGE_SIZE='huge'" in capsys.readouterr().err
