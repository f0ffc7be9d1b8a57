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


def test_summary(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "run:     run42" in out
    assert "H5DataWriter.writer" in out and "constellation_version=0.1.0" in out
    assert f"sender:  {SENDER}" in out
    assert "20 (sequence 5..24), 160 B" in out
    assert "condition TAINTED (code 1)" in out
    assert "Scope.s" in out and "not written (yet)" in out
    assert "total:   21 records" in out


def test_export_npy(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "npy"
    assert main(["export", str(run_file), "--sender", SENDER, "-o", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "exported 20/20 records" in captured.err
    blocks = np.load(out_dir / f"{SENDER}_block_00.npy")
    assert blocks.shape == (20, 8) and blocks.dtype == np.uint8
    assert blocks[:, 0].tolist() == list(range(5, 25))
    assert np.load(out_dir / f"{SENDER}_sequence.npy").tolist() == list(range(5, 25))
    lines = (out_dir / f"{SENDER}_tags.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"trigger": 5, "kind": "pulse"}
    assert f"{SENDER}_block_00.npy" in captured.out


def test_export_ragged_npy(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", [Rec(1, {}, [b"ab"]), Rec(2, {}, [b"cde"])])
    run.close()
    assert main(["export", str(run.path), "-s", "T.t", "-o", str(tmp_path), "-q"]) == 0
    assert np.load(tmp_path / "T.t_block_00.npy").tobytes() == b"abcde"
    assert np.load(tmp_path / "T.t_block_00_offsets.npy").tolist() == [2, 5]


def test_export_csv(run_file: Path, tmp_path: Path) -> None:
    args = ["export", str(run_file), "-s", "Scope.s", "-f", "csv", "-o", str(tmp_path), "-q"]
    assert main(args) == 0
    with (tmp_path / "Scope.s.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["sequence", "tags", "block_lengths"], ["1", '{"dtype":"float32"}', "[12]"]]


def test_dump(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", str(run_file), "--sender", "Scope.s"]) == 0
    out = capsys.readouterr().out
    assert '#1 tags={"dtype":"float32"}' in out
    assert "block_00 float32[3]: 1.0 1.0 1.0" in out
    assert main(["dump", str(run_file), "-s", SENDER, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("#") == 2 and "#6 " in out and "#7 " not in out


def test_errors(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path / "missing.h5")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["dump", str(run_file), "-s", "No.body"]) == 1
    err = capsys.readouterr().err
    assert "no sender 'No.body'" in err and SENDER in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert main(["summary", str(junk)]) == 1
    assert "not a readable HDF5 file" in capsys.readouterr().err
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
    assert "sender:  RandomTransmitter.t1" in result.stdout
