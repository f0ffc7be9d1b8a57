"""The plain-h5py decoder printed in docs/file-format.md, run against files of our writer.

The ```python block of the page's "Decoding with plain h5py" section is extracted and run as
it stands: in a separate process while the H5DataWriter is in RUN (SWMR mode, polling until
records appear), and in this process on the closed files of both modes. It must agree with the
transmitter's records and with ``constellation.reader``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import pytest

from constellation.reader import open_run
from controller import Controller
from satellites.h5datawriter.satellite import H5DataWriter
from satellites.random_transmitter import RandomTransmitter, random_records
from tests.helpers import (
    LOOPBACK,
    REPO,
    TX,
    WRITER,
    cycle_to_run,
    wait_for,
    writer_run_config,
)

BLOCK_SIZE, BLOCKS, SEED = 40, 2, 11
EXPECTED = random_records(BLOCK_SIZE, BLOCKS, SEED)


def doc_example() -> str:
    """The ```python block of the "Decoding with plain h5py" section of docs/file-format.md."""
    text = (REPO / "docs" / "file-format.md").read_text()
    section = text.split("## Decoding with plain h5py", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section must hold exactly one python block"
    return blocks[0]


def _namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(doc_example(), "docs/file-format.md", "exec"), namespace)
    return namespace


def _config(out: Path, swmr: bool) -> dict[str, Any]:
    config = writer_run_config(out, swmr, rate=400, block_size=BLOCK_SIZE, seed=SEED)
    config["RandomTransmitter"]["tx"]["number_of_blocks"] = BLOCKS
    return config


def _expected(sequence: int) -> list[bytes]:
    return list(EXPECTED[(sequence - 1) % len(EXPECTED)])


# Runs in a separate process: the doc's code, then poll (with a deadline) until records appear.
LIVE_DRIVER = textwrap.dedent(
    """
    import sys, time
    path, sender_name, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    deadline = time.monotonic() + 30
    counts = []
    with h5py.File(path, "r", swmr=True) as h5file:
        writers, senders = root_groups(h5file)
        sender = h5file[sender_name]
        while time.monotonic() < deadline:
            records = swmr_records(sender)
            if not counts or len(records) != counts[-1]:
                counts.append(len(records))
            if len(records) >= wanted:
                break
            time.sleep(0.05)
        out = {
            "writers": writers,
            "senders": senders,
            "swmr_mode": bool(h5file[writers[0]].attrs["swmr_mode"]),
            "counts": counts,
            "records": [[t, [b.tobytes().hex() for b in bl]] for t, bl in records],
            "eor": swmr_eor(sender),
        }
    print(json.dumps(out), flush=True)
    """
)


def test_doc_decoder_reads_a_swmr_file_during_and_after_the_run(
    satellites: Any, group: str, tmp_path: Path
) -> None:
    satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    path = tmp_path / "data_doc_live.h5"
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        cycle_to_run(ctl, _config(tmp_path, True), "doc_live")
        writer = ctl.satellites[WRITER]
        live = subprocess.run(
            [sys.executable, "-c", doc_example() + LIVE_DRIVER, str(path), TX, "100"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        still_running = writer.command("get_state").verb
        ctl.stop()
        ctl.await_state("ORBIT", 20)
    assert live.returncode == 0, live.stderr
    assert still_running == "RUN", "the live decode must happen while the writer is in RUN"
    seen = json.loads(live.stdout)
    assert seen["writers"] == [WRITER] and seen["senders"] == [TX] and seen["swmr_mode"]
    assert seen["counts"][-1] >= 100 and seen["counts"] == sorted(seen["counts"])
    assert seen["eor"] == {"user_tags": None, "run_metadata": None}  # no EOR yet
    for tags, blocks in seen["records"]:
        assert [bytes.fromhex(b) for b in blocks] == _expected(tags["sequence"])
    assert [tags["sequence"] for tags, _ in seen["records"]] == list(
        range(1, len(seen["records"]) + 1)
    )

    doc = _namespace()  # after the run, in this process (one HDF5 handle at a time)
    summary = doc["summary"](path)
    with h5py.File(path, "r", swmr=True) as h5file:
        decoded = doc["swmr_records"](h5file[TX])
        bor_tags = doc["attribute_map"](h5file[TX]["BOR/user_tags"])
    with open_run(path) as run:
        count = run.record_count(TX)
        eor = run.eor(TX)
        assert eor is not None and summary == {TX: (count, eor["run_metadata"])}
        assert summary[TX][1]["data_records"] == count > len(seen["records"])
        for (tags, blocks), record in zip(decoded, run.records(TX), strict=True):
            assert tags["sequence"] == record.sequence
            assert [b.tobytes() for b in blocks] == _expected(record.sequence)
    assert bor_tags["seed"] == SEED


def test_doc_decoder_reads_a_normal_file(satellites: Any, group: str, tmp_path: Path) -> None:
    writer = satellites(H5DataWriter, "w")
    satellites(RandomTransmitter, "tx")
    path = tmp_path / "data_doc_normal.h5"
    with Controller(group, interface=LOOPBACK) as ctl:
        ctl.await_satellites([TX, WRITER], timeout=20)
        cycle_to_run(ctl, _config(tmp_path, False), "doc_normal")
        # the source of the writer's RECORDS_WRITTEN metric (a normal-mode file is locked)
        wait_for(lambda: writer._records_written() >= 50, timeout=20, what="50 records")
        ctl.stop()
        ctl.await_state("ORBIT", 20)

    with h5py.File(path, "r") as h5file:  # the direct paths the doc names
        assert h5file[TX]["data_000000001"]["block_00"][()].tobytes() == _expected(1)[0]
        assert h5file[TX]["data_000000001"]["block_01"][()].tobytes() == _expected(1)[1]
        assert h5file[TX]["EOR"]["run_metadata"].attrs["run_id"] == "doc_normal"
    doc = _namespace()
    summary = doc["summary"](path)
    with h5py.File(path, "r") as h5file:
        records = doc["normal_records"](h5file[TX])
        config = doc["attribute_map"](h5file[TX]["BOR/configuration"])
    with open_run(path) as run:
        count = run.record_count(TX)
    assert count >= 50
    assert set(summary) == {TX} and summary[TX][0] == count
    assert summary[TX][1]["data_records"] == count
    assert summary[TX][1]["condition"] == "GOOD"
    assert [seq for seq, _, _ in records] == list(range(1, count + 1))
    for sequence, tags, blocks in records:
        assert tags == {}
        assert [b.tobytes() for b in blocks] == _expected(sequence)
    assert config["number_of_blocks"] == BLOCKS and "_data.bor_timeout" in config


pytestmark = pytest.mark.timeout(120)
