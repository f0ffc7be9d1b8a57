"""The constellation-h5 command: summary, export (npy, csv), dump and error exits."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from constellation.reader.cli import main
from tests.helpers import BIN, REPO
from tests.unit.h5.support import Rec, make_records, new_run

SENDER = "RandomTransmitter.t1"
CLI_MODULE = "constellation.reader.cli"


@pytest.fixture(params=[False, True], ids=["normal", "swmr"])
def run_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    run = new_run(tmp_path / "data", request.param, [SENDER, "Scope.s"], run_id="run42")
    run.begin_sender(SENDER, {"block_size": 8}, {"rate": 0})
    run.begin_sender("Scope.s", {}, {})
    run.write_records(SENDER, make_records(5, 20, size=8))
    run.write_records("Scope.s", [Rec(1, {"dtype": "float32"}, [np.ones(3, "f4").tobytes()])])
    metadata = {"run_id": "run42", "condition": "TAINTED", "condition_code": 1}
    run.end_sender(SENDER, {}, {**metadata, "data_records": 24})
    run.close()
    return run.path


def _row(out: str, first: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(first))


def test_summary(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "run:     run42" in out and "\x1b[" not in out
    assert "H5DataWriter.writer" in out and "constellation_version=0.1.0" in out
    assert _row(out, "sender") == [
        "sender",
        "layout",
        "records",
        "sequence",
        "data",
        "missing",
        "EOR",
    ]
    row = _row(out, SENDER)
    assert row[2:6] == ["20", "5..24", "160", "B"] and row[6] == "4"  # EOR says 24, 20 stored
    assert "TAINTED (code 1)" in " ".join(row)
    assert "not written (yet)" in " ".join(_row(out, "Scope.s"))
    assert "total:   21 records" in out
    assert f"BOR {SENDER}: rate=0" in out


def test_summary_counts_sequence_gaps_without_eor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", [Rec(1, {}, [b"a"]), Rec(2, {}, [b"b"]), Rec(6, {}, [b"c"])])
    run.close()
    assert main(["summary", str(run.path)]) == 0
    assert _row(capsys.readouterr().out, "T.t")[6] == "3"


def test_summary_of_many_files_one_line_per_run(
    run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = new_run(tmp_path / "data", False, ["T.t"], run_id="run7")
    other.begin_sender("T.t", {}, {})
    other.write_records("T.t", make_records(1, 3, size=2))
    other.close()
    assert main(["summary", str(tmp_path / "data")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["run", "file", "senders", "records", "condition", "missing"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"run42", "run7"} and len(lines) == 3
    assert rows["run42"][1:4] == [run_file.name, "2", "21"] and rows["run42"][-1] == "4"
    assert rows["run7"][2:4] == ["1", "3"] and rows["run7"][-1] == "0"
    assert main(["summary", str(run_file), str(other.path)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_export_npy(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "npy"
    assert main(["export", str(run_file), "--sender", SENDER, "-f", "npy", "-o", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "exported 20/20 records" in captured.err
    stem = f"run_42_{SENDER}"
    blocks = np.load(out_dir / f"{stem}_block_00.npy")
    assert blocks.shape == (20, 8) and blocks.dtype == np.uint8
    assert blocks[:, 0].tolist() == list(range(5, 25))
    assert np.load(out_dir / f"{stem}_sequence.npy").tolist() == list(range(5, 25))
    lines = (out_dir / f"{stem}_tags.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"trigger": 5, "kind": "pulse"}
    assert f"{stem}_block_00.npy" in captured.out


def test_export_refuses_to_overwrite(
    run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", str(run_file), "-s", "Scope.s", "-o", str(tmp_path), "-q"]
    assert main(args) == 0
    target = tmp_path / "run_42_Scope.s.csv"
    target.write_text("mine")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and target.name in err
    assert target.read_text() == "mine"
    assert main([*args, "--force"]) == 0
    assert target.read_text() != "mine"


def test_export_ragged_npy(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", [Rec(1, {}, [b"ab"]), Rec(2, {}, [b"cde"])])
    run.close()
    assert main(["export", str(run.path), "-s", "T.t", "-f", "npy", "-o", str(tmp_path), "-q"]) == 0
    assert np.load(tmp_path / "run_1_T.t_block_00.npy").tobytes() == b"abcde"
    assert np.load(tmp_path / "run_1_T.t_block_00_offsets.npy").tolist() == [2, 5]


def test_export_csv(run_file: Path, tmp_path: Path) -> None:
    args = ["export", str(run_file), "-s", "Scope.s", "-o", str(tmp_path), "-q"]
    assert main(args) == 0  # csv is the default
    with (tmp_path / "run_42_Scope.s.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["sequence", "tags", "values"],
        ["1", '{"dtype":"float32"}', "1.0", "1.0", "1.0"],
    ]


def test_dump(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", str(run_file), "--sender", "Scope.s"]) == 0
    out = capsys.readouterr().out
    assert '#1 tags={"dtype":"float32"}' in out
    assert "block_00 float32[3]: 1.0 1.0 1.0" in out
    assert main(["dump", str(run_file), "-s", SENDER, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("#") == 2 and "#6 " in out and "#7 " not in out


def test_errors(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path / "missing.h5")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["dump", str(run_file), "-s", "No.body"]) == 2
    err = capsys.readouterr().err
    assert "no sender 'No.body'" in err and SENDER in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert main(["summary", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not a readable HDF5 file" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main(["export", str(run_file)])  # --sender missing
    assert info.value.code == 2


def test_console_command_as_subprocess(run_file: Path) -> None:
    script = BIN / "constellation-h5"
    command = [str(script)] if script.exists() else [sys.executable, "-m", CLI_MODULE]
    result = subprocess.run(
        [*command, "summary", str(run_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "RandomTransmitter.t1" in result.stdout and "\x1b[" not in result.stdout
    help_text = subprocess.run(
        [*command, "export", "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    assert "(default: csv)" in help_text and "--force" in help_text
