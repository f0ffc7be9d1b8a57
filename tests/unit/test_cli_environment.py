"""The launcher checks the CONSTELLATION_* knobs before it builds or starts anything."""

from __future__ import annotations

import pytest

from constellation import cli
from constellation.satellite import Satellite


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
