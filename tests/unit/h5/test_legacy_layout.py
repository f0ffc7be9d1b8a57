"""Files of earlier versions of this project (senders nested in the writer group) still read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from constellation.reader import open_run
from constellation.reader.cli import main
from tests.unit.h5.support import WRITER, Rec, make_records, nest_senders, new_run

SENDERS = ["RandomTransmitter.t1", "Scope.s"]


def _write(tmp_path: Path, swmr: bool) -> Path:
    run = new_run(tmp_path, swmr, SENDERS, run_id="old7")
    run.begin_sender(SENDERS[0], {"block_size": 8}, {"rate": {"hz": 5}})
    run.begin_sender(SENDERS[1], {}, {})
    run.write_records(SENDERS[0], make_records(1, 30, size=8))
    run.write_records(SENDERS[1], [Rec(4, {"dtype": "float32"}, [np.ones(3, "f4").tobytes()])])
    for sender in SENDERS:
        run.end_sender(sender, {"bye": 1}, {"run_id": "old7", "condition": "GOOD"})
    run.close()
    return run.path


def _records(run: Any, sender: str) -> list[tuple[int, dict[str, Any], list[list[Any]]]]:
    return [(r.sequence, r.tags, [b.tolist() for b in r.blocks]) for r in run.records(sender)]


def _contents(path: Path) -> dict[str, Any]:
    with open_run(path) as run:
        return {
            "mode": run.mode,
            "writers": run.writers,
            "senders": sorted(run.senders),
            "run_id": run.run_id,
            "per_sender": {
                sender: (
                    run.bor(sender),
                    run.eor(sender),
                    run.stats(sender),
                    _records(run, sender),
                )
                for sender in run.senders
            },
        }


@pytest.mark.parametrize("swmr", [False, True], ids=["normal", "swmr"])
def test_old_nested_file_reads_like_a_new_one(tmp_path: Path, swmr: bool) -> None:
    new = _write(tmp_path / "new", swmr)
    old = _write(tmp_path / "old", swmr)
    assert sorted(nest_senders(old)) == sorted(SENDERS)
    with h5py.File(old, "r") as h5file:  # really the old layout
        assert list(h5file) == [WRITER]
        assert sorted(h5file[WRITER]) == sorted(SENDERS)
    expected = _contents(new)
    assert expected["senders"] == sorted(SENDERS) and expected["writers"] == [WRITER]
    assert len(expected["per_sender"][SENDERS[0]][3]) == 30
    assert _contents(old) == expected


def test_cli_summary_of_an_old_nested_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _write(tmp_path, swmr=False)
    nest_senders(old)
    assert main(["summary", str(old)]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith(SENDERS[0]))
    assert row[2:4] == ["30", "1..30"]
    assert "total:   31 records" in out
