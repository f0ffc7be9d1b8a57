"""Scan files and scan plans: parameters, steps, run-id prefixes and error messages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from controller.cli import Progress, _parse_until
from controller.config import ConfigFileError
from controller.runs import Until
from controller.scan import Parameter, Scan, load_scan
from controller.telemetry import MetricWatcher, Sample


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_scan_file_with_two_zipped_parameters(tmp_path: Path) -> None:
    scan = load_scan(
        write(
            tmp_path,
            "scan.toml",
            'prefix = "hv"\nduration = 2.5\nmode = "reconfigure"\nfirst = 7\n\n'
            '[until]\nmetric = "rx_records"\nvalue = 1000\nsatellite = "Writer.w"\n\n'
            '[[parameter]]\ntarget = "Sensor"\nkey = "bias.voltage"\nvalues = [10, 20, 30]\n\n'
            '[[parameter]]\ntarget = "Sensor.s1"\nkey = "gain"\nstart = 1\nstop = 2\nstep = 0.5\n',
        )
    )
    assert (scan.prefix, scan.duration, scan.mode, scan.first, scan.land) == (
        "hv",
        2.5,
        "reconfigure",
        7,
        True,
    )
    assert scan.until == Until("rx_records", 1000, "Writer.w")
    steps = scan.steps()
    assert [{p.label: v for p, v in step.items()} for step in steps] == [
        {"Sensor.bias.voltage": 10, "Sensor.s1.gain": 1.0},
        {"Sensor.bias.voltage": 20, "Sensor.s1.gain": 1.5},
        {"Sensor.bias.voltage": 30, "Sensor.s1.gain": 2.0},
    ]


def test_yaml_scan_file_and_product(tmp_path: Path) -> None:
    scan = load_scan(
        write(
            tmp_path,
            "scan.yaml",
            "duration: 1\ncombine: product\nland: false\nparameter:\n"
            "  - {target: A.a, key: x, values: [1, 2]}\n"
            "  - {target: B, key: y, values: [a, b, c]}\n",
        )
    )
    assert scan.prefix == "scan" and scan.land is False
    assert len(scan.steps()) == 6


def test_parameter_targets_and_range() -> None:
    present = ["Sensor.s1", "Sensor.s2", "Writer.w", "SensorX.s1"]
    assert Parameter("sensor", "v", [1]).targets(present) == ["Sensor.s1", "Sensor.s2"]
    assert Parameter("SENSOR.S2", "v", [1]).targets(present) == ["Sensor.s2"]
    assert Parameter.range("A", "v", 0, 10, 5).values == (0, 5, 10)
    assert Parameter.range("A", "v", 1.0, 0.0, -0.25).values == (1.0, 0.75, 0.5, 0.25, 0.0)
    with pytest.raises(ValueError, match="never reaches"):
        Parameter.range("A", "v", 0, 10, -1)


def test_scan_plan_checks() -> None:
    p3, p2 = Parameter("A", "x", [1, 2, 3]), Parameter("B", "y", [1, 2])
    with pytest.raises(ValueError, match="same number of values"):
        Scan([p3, p2], duration=1)
    assert len(Scan([p3, p2], duration=1, combine="product").steps()) == 6
    with pytest.raises(ValueError, match="duration, an until condition"):
        Scan([p3])
    with pytest.raises(ValueError, match="mode must be one of"):
        Scan([p3], duration=1, mode="sometimes")
    with pytest.raises(ValueError):
        Scan([p3], duration=1, prefix="bad prefix")


def test_second_parameter_table_is_located(tmp_path: Path) -> None:
    text = (
        "duration = 1\n[[parameter]]\ntarget = 'A'\nkey = 'x'\nvalues = [1]\n\n"
        "[[parameter]]\ntarget = 'B'\nkey = 'y'\nvalues = 'oops'\n"
    )
    with pytest.raises(ConfigFileError) as info:
        load_scan(write(tmp_path, "scan.toml", text))
    assert (info.value.key, info.value.line) == ("parameter.values", 10)


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"),
    [
        ('prefix = "a"\nduraton = 3\n', "duraton", 2, "unknown key"),
        (
            'duration = "long"\n[[parameter]]\ntarget="A"\nkey="x"\nvalues=[1]\n',
            "duration",
            1,
            "expected int or float, got str",
        ),
        ("duration = 1\n", "parameter", None, "at least one [[parameter]]"),
        (
            'duration = 1\n\n[[parameter]]\ntarget = "A"\nkey = "x"\nvalus = [1]\n',
            "parameter.valus",
            6,
            "unknown key",
        ),
        (
            'duration = 1\n[[parameter]]\ntarget = "A"\nkey = "x"\n',
            "parameter",
            2,
            "A.x needs 'values', or 'start', 'stop' and 'step'",
        ),
        (
            'duration = 1\n[until]\nmetric = "X"\n[[parameter]]\ntarget="A"\nkey="x"\nvalues=[1]\n',
            "until",
            2,
            "needs 'metric' and 'value'",
        ),
        ('[[parameter]]\ntarget="A"\nkey="x"\nvalues=[1]\n', "", None, "needs a duration"),
    ],
)
def test_scan_file_errors(
    tmp_path: Path, text: str, key: str, line: int | None, fragment: str
) -> None:
    path = write(tmp_path, "scan.toml", text)
    with pytest.raises(ConfigFileError) as info:
        load_scan(path)
    assert info.value.key == key
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}" + (f":{line}" if line else ""))
    assert fragment in str(info.value)


def test_until_option() -> None:
    assert _parse_until("RX_RECORDS>=1e4") == Until("RX_RECORDS", 10000.0)
    assert _parse_until("Writer.w/RX_RECORDS >= 5") == Until("RX_RECORDS", 5.0, "Writer.w")
    for bad in ("RX_RECORDS", ">=5", "X>=many"):
        with pytest.raises(ValueError, match="--until must read"):
            _parse_until(bad)


class _FakeWatcher:
    def __init__(self, samples: dict[str, dict[str, Sample]]) -> None:
        self.samples = samples

    def latest(self, metric: str, satellite: str | None = None) -> dict[str, Sample]:
        return self.samples.get(metric, {})


def test_progress_line_off_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, "r1")
    watcher = _FakeWatcher(
        {
            "TX_RECORDS": {"T.a": Sample(1500, "", 0.0, 100.0), "T.b": Sample(500, "", 0.0, 50.0)},
            "RX_RECORDS": {"R.r": Sample(1990, "", 0.0, None)},
        }
    )
    progress(0.0, 60.0, None)
    progress(3.0, 60.0, watcher)  # type: ignore[arg-type]  # within 6 s of the last line
    progress(6.5, 60.0, watcher)  # type: ignore[arg-type]
    progress.done()
    lines = out.getvalue().splitlines()
    assert lines[0] == "r1 [....................] 00:00 / 01:00"
    assert lines[1] == "r1 [##..................] 00:06 / 01:00  sent 2,000 (150/s)  received 1,990"
    assert len(lines) == 2  # the latest state was shown already
    assert Until("TX_RECORDS", 1500, "T.a").reached(watcher)  # type: ignore[arg-type]
    assert not Until("TX_RECORDS", 1501, "T.a").reached(watcher)  # type: ignore[arg-type]
    assert MetricWatcher  # the real one is exercised by the integration tests
