"""SWMR mode: a reader in another process sees records while the file is being written."""

from __future__ import annotations

import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from constellation.errors import InputFileError
from constellation.reader import open_run
from satellites.h5datawriter.runfile import RunFile
from tests.helpers import REPO
from tests.unit.h5.support import make_records, new_run

# Plain h5py + numpy, following docs/file-format.md only: on each "poll" line, refresh the
# indices and print how many records are complete (index entries before the first 0) and
# whether the last one decodes to its sequence number.
_PLAIN_READER = """
import json, sys
import h5py, hdf5plugin, numpy as np
path, group_path = sys.argv[1], sys.argv[2]
with h5py.File(path, "r", swmr=True) as h5file:
    group = h5file[group_path]
    print("open", flush=True)
    for line in sys.stdin:
        for name in ("data_idx", "meta_idx", "meta", "data"):
            group[name].refresh()
        data_idx = group["data_idx"][:]
        zeros = np.flatnonzero(data_idx == 0)
        count = int(zeros[0]) if zeros.size else int(data_idx.shape[0])
        ok = True
        if count:
            meta_idx = group["meta_idx"][:count]
            start = int(meta_idx[count - 2]) if count > 1 else 0
            tags = json.loads(group["meta"][start : int(meta_idx[count - 1])].tobytes())
            first = int(data_idx[count - 2]) if count > 1 else 0
            payload = group["data"][first : int(data_idx[count - 1])]
            ok = bool((payload == tags["sequence"] % 251).all()) and payload.size > 0
        print(count, ok, flush=True)
"""

# The framework reader, same protocol: prints the count and whether the EOR is there.
_FRAMEWORK_READER = """
import sys
sys.path.insert(0, sys.argv[3])
from constellation.reader import open_run
with open_run(sys.argv[1]) as run:
    assert run.swmr_read and run.mode == "swmr" and run.bor(sys.argv[2])["user_tags"] == {"k": 1}
    print("open", flush=True)
    for line in sys.stdin:
        run.refresh()
        sequences = [record.sequence for record in run.records(sys.argv[2])]
        ok = sequences == list(range(1, len(sequences) + 1))
        print(len(sequences), ok and run.eor(sys.argv[2]) is not None, flush=True)
"""


class _Reader:
    """The plain reader process, asked for its count over a pipe (never a bare sleep)."""

    def __init__(self, path: Path, group: str, tmp_path: Path, source: str) -> None:
        script = tmp_path / "reader.py"
        script.write_text(textwrap.dedent(source))
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(path), group, str(REPO)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._line(10.0) == "open"

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("reader process did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"reader process ended: {stderr}")
        return line.strip()

    def poll(self) -> tuple[int, bool]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("poll\n")
        self.proc.stdin.flush()
        count, ok = self._line(10.0).split()
        return int(count), ok == "True"

    def wait_for(self, count: int, timeout: float = 10.0) -> tuple[int, bool]:
        """Poll until the reader sees ``count`` records (fails after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            seen, ok = self.poll()
            if seen >= count or time.monotonic() > deadline:
                return seen, ok

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def swmr_run(tmp_path: Path) -> Iterator[tuple[RunFile, Path]]:
    run = new_run(tmp_path, True, ["T.t"], compression="zstd")
    run.begin_sender("T.t", {"k": 1}, {})
    assert run.swmr_active
    yield run, tmp_path
    run.close()


def test_separate_process_sees_records_grow(swmr_run: tuple[RunFile, Path]) -> None:
    run, tmp_path = swmr_run
    reader = _Reader(run.path, "T.t", tmp_path, _PLAIN_READER)
    try:
        assert reader.poll() == (0, True)
        seen = []
        for step in range(4):
            first = step * 300 + 1
            run.write_records("T.t", make_records(first, 300, size=700))
            run.flush()
            count, ok = reader.wait_for(first + 299)
            assert ok, "the newest record must decode while the file is written"
            seen.append(count)
        assert seen == [300, 600, 900, 1200]
    finally:
        reader.close()


def test_framework_reader_follows_a_growing_file(swmr_run: tuple[RunFile, Path]) -> None:
    run, tmp_path = swmr_run
    run.write_records("T.t", make_records(1, 10))
    run.flush()
    reader = _Reader(run.path, "T.t", tmp_path, _FRAMEWORK_READER)
    try:
        assert reader.poll() == (10, False)  # no EOR yet
        run.write_records("T.t", make_records(11, 5))
        run.end_sender("T.t", {}, {"run_id": "run1"})
        run.flush()
        assert reader.wait_for(15) == (15, True)
    finally:
        reader.close()
    with open_run(run.path) as same_process:  # shares the writer's open file
        assert same_process.record_count("T.t") == 15
        assert same_process.eor("T.t") == {"user_tags": {}, "run_metadata": {"run_id": "run1"}}


def test_normal_mode_file_is_not_readable_while_written(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, ["T.t"])
    run.begin_sender("T.t", {}, {})
    run.flush()
    script = f"from constellation.reader import open_run; open_run({str(run.path)!r})"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    run.close()
    assert result.returncode != 0
    assert InputFileError.__name__ in result.stderr and "being written" in result.stderr
