"""File naming, never overwriting, and write errors that keep earlier data intact."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import pytest

from constellation.errors import (
    ConfigError,
    ConstellationError,
    OutputFileError,
    OutputFileExistsError,
)
from constellation.reader import open_run
from satellites.h5datawriter import normal_layout, swmr_layout
from satellites.h5datawriter.runfile import RunFile
from tests.helpers import REPO
from tests.unit.h5.support import make_records, new_run, spec_read_swmr


def test_creates_directory_and_names_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er"
    with RunFile.create(target, "run-7_a", "H5DataWriter.w") as run:
        assert run.path == target / "data_run-7_a.h5"
    assert run.closed and run.path.is_file()


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "data_run1.h5"
    existing.write_bytes(b"precious")
    with pytest.raises(OutputFileExistsError) as info:
        new_run(tmp_path, False, [])
    assert isinstance(info.value, FileExistsError)
    assert isinstance(info.value, ConstellationError)
    assert str(existing) in str(info.value)
    assert existing.read_bytes() == b"precious"


def test_rename_mode_adds_a_suffix(tmp_path: Path) -> None:
    (tmp_path / "data_run1.h5").write_bytes(b"first")
    (tmp_path / "data_run1_1.h5").write_bytes(b"second")
    with new_run(tmp_path, False, [], file_conflict="rename") as run:
        assert run.path.name == "data_run1_2.h5"
    assert (tmp_path / "data_run1.h5").read_bytes() == b"first"


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run identifier"):
        RunFile.create(tmp_path, "../escape", "W.w")
    with pytest.raises(ConfigError, match="file_conflict"):
        RunFile.create(tmp_path, "r", "W.w", file_conflict="overwrite")
    with pytest.raises(ConfigError, match="compression"):
        RunFile.create(tmp_path, "r", "W.w", compression="snappy")
    assert not list(tmp_path.iterdir())


def test_unwritable_directory_names_the_cause(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputFileError) as info:
        RunFile.create(blocker / "sub", "r", "W.w")
    assert str(blocker / "sub") in str(info.value)


def _fail_after(calls: int, error: Exception) -> Any:
    """A replacement that lets ``calls`` calls through, then raises ``error``."""
    state = {"left": calls}

    def patch(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if state["left"] <= 0:
                raise error
            state["left"] -= 1
            return original(*args, **kwargs)

        return wrapper

    return patch


def test_swmr_write_error_keeps_flushed_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = new_run(tmp_path, True, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", make_records(1, 50))
    run.flush()
    disk_full = OSError(28, "No space left on device")
    monkeypatch.setattr(
        swmr_layout, "_write_slice", _fail_after(1, disk_full)(swmr_layout._write_slice)
    )
    with pytest.raises(OutputFileError) as info:
        run.write_records("T.t", make_records(51, 50))
        run.flush()  # batches are held back until about 1 MiB is pending, or the flush
    message = str(info.value)
    assert str(run.path) in message and "No space left on device" in message
    with pytest.raises(OutputFileError, match="earlier error"):
        run.write_records("T.t", make_records(101, 1))
    monkeypatch.undo()
    run.close()
    run.close()  # idempotent
    with h5py.File(run.path, "r") as h5file:
        records = spec_read_swmr(h5file["T.t"])
    assert [tags["sequence"] for tags, _ in records] == list(range(1, 51))


def test_normal_write_error_keeps_earlier_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.write_records("T.t", make_records(1, 20))
    run.flush()
    denied = PermissionError(13, "Permission denied")
    monkeypatch.setattr(
        normal_layout, "_write_block", _fail_after(3, denied)(normal_layout._write_block)
    )
    with pytest.raises(OutputFileError) as info:
        run.write_records("T.t", make_records(21, 20))
    assert str(run.path) in str(info.value) and "Permission denied" in str(info.value)
    run.close()
    with open_run(run.path) as reader:
        sequences = [record.sequence for record in reader.records("T.t")]
    assert sequences[:20] == list(range(1, 21))


_FILL_DISK = """
import resource, signal, sys
sys.path.insert(0, sys.argv[2])
from constellation.errors import OutputFileError
from satellites.h5datawriter import space
from tests.unit.h5.support import make_records, new_run
space.HEADROOM = space.STEP = 256 * 1024
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
run = new_run(sys.argv[1], sys.argv[3] == "swmr", ["T.t"])
run.begin_sender("T.t", {}, {})
run.write_records("T.t", make_records(1, 100, size=1024))
run.flush()
limit = run.path.stat().st_size + 2 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
seq = 101
try:
    while seq < 100_000:
        run.write_records("T.t", make_records(seq, 10, size=16 * 1024))
        run.flush()
        seq += 10
    print("NO ERROR")
except OutputFileError as exc:
    print("ERROR", exc)
print("WRITTEN", run.records_written)
try:
    run.close()
except OutputFileError as exc:
    print("CLOSE", exc)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs RLIMIT_FSIZE (POSIX)")
@pytest.mark.parametrize("mode", ["swmr", "normal"])
def test_real_file_size_limit(tmp_path: Path, mode: str) -> None:
    """A real write failure (file size limit, like a full disk) in a separate process."""
    script = tmp_path / "fill.py"
    script.write_text(textwrap.dedent(_FILL_DISK))
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(REPO), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ERROR output file" in result.stdout, result.stdout + result.stderr
    assert str(tmp_path / "data_run1.h5") in result.stdout
    assert "File too large" in result.stdout  # the OS's reason (EFBIG)
    assert "CLOSE" not in result.stdout, "closing must work after the error"
    written = int(result.stdout.split("WRITTEN ")[1].split()[0])
    with open_run(tmp_path / "data_run1.h5") as reader:
        sequences = [record.sequence for record in reader.records("T.t")]
    assert written > 100
    assert sequences == list(range(1, written + 1)), "every record before the error is intact"


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate here")
def test_disk_reserve_is_taken_again_after_a_truncation(tmp_path: Path) -> None:
    from satellites.h5datawriter.space import HEADROOM, DiskReserve

    path = tmp_path / "f.h5"
    path.write_bytes(b"x" * 100)
    reserve = DiskReserve(path)
    reserve.ensure(100, 0)
    assert path.stat().st_size >= 100 + HEADROOM
    os.truncate(path, 100)  # what an HDF5 flush does to the space past its end of allocation
    reserve.ensure(100, 10)
    assert path.stat().st_size >= 110 + HEADROOM
    assert os.stat(path).st_blocks * 512 >= 110 + HEADROOM  # allocated, not a hole
    reserve.release(100)
    assert path.stat().st_size == 100
