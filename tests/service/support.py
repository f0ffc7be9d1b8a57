"""Run files and a live server for the data-service tests (real RunFile writer, loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uvicorn

from satellites.h5datawriter.runfile import RunFile
from tests.helpers import LOOPBACK, REPO, wait_for
from tests.unit.h5.support import nest_senders

WRITER = "H5DataWriter.w"
TX = "RandomTransmitter.tx"
TX2 = "Sensor.s2"


def eor_meta(run_id: str, records: int, condition: str = "GOOD") -> dict:
    return {
        "run_id": run_id,
        "condition": condition,
        "condition_code": 0 if condition == "GOOD" else 8,
        "data_records": records,
        "time_start": "2026-01-02T03:04:05Z",
        "time_end": "2026-01-02T03:14:05Z",
    }


def blocks(seq: int, size: int = 32) -> list[bytes]:
    return [np.arange(seq, seq + size, dtype="<u2").tobytes()]


class Rec:
    def __init__(self, sequence: int, tags: dict, blocks: list[bytes]) -> None:
        self.sequence, self.tags, self.blocks = sequence, tags, blocks


def records(start: int, count: int, size: int = 32) -> list[Rec]:
    return [
        Rec(s, {"dtype": "<u2", "trigger": s}, blocks(s, size)) for s in range(start, start + count)
    ]


def write_run(directory: Path, run_id: str, swmr: bool, count: int = 20, **kw: object) -> Path:
    """A closed run file of two senders (``count`` records each) with BOR and EOR."""
    run = RunFile.create(
        directory, run_id, WRITER, swmr=swmr, expected_senders=[TX, TX2] if swmr else None
    )
    for sender in (TX, TX2):
        run.begin_sender(sender, {"operator": "ada", "note": f"beam {run_id}"}, {"rate": 5})
    for sender in (TX, TX2):
        run.write_records(sender, records(1, count))
        run.end_sender(sender, {"final": "yes"}, eor_meta(run_id, count, **kw))  # type: ignore[arg-type]
    run.close()
    return run.path


def make_directory(directory: Path) -> dict[str, Path]:
    """Normal, SWMR, old nested layout, a corrupt and a truncated file."""
    files = {
        "normal": write_run(directory, "run1", swmr=False),
        "swmr": write_run(directory, "run2", swmr=True, condition="ABORTED"),
    }
    files["nested"] = write_run(directory, "run3", swmr=False)
    nest_senders(files["nested"], WRITER)
    corrupt = directory / "data_broken.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    files["corrupt"] = corrupt
    truncated = directory / "data_cut.h5"
    truncated.write_bytes(files["swmr"].read_bytes()[:2000])
    files["truncated"] = truncated
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free loopback port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=15, what="uvicorn start")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        catalog = getattr(getattr(app, "state", None), "catalog", None)
        if catalog is not None:  # lifespan is off here: close what its shutdown would
            catalog.close()


class Writer:
    """tests/service/grow_writer.py in a child process, driven line by line."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.service.grow_writer", str(directory), run_id],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.reply() == "ok 0"

    def reply(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def send(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
