"""Our H5DataWriter files have the tree of Constellation's (constellationdaq 1.0.2), both modes.

One of our RandomTransmitters (fixed seed and rate) is recorded twice per mode: by their
H5DataWriter in one group, by ours in another. The two HDF5 trees (tests/interop/h5tree.py:
paths with canonical names normalised, dataset dtypes and shape kinds, attribute names) must
be identical except for the additions listed in OUR_ADDITIONS, which docs/file-format.md states.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from satellites.random_transmitter import random_records
from tests.helpers import LOOPBACK, REPO, unique_group
from tests.interop.h5tree import compare, describe
from tests.interop.test_interop import CHIRP, _ok, _run

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

#: (writer, transmitter) recorded in each of the two groups; names differ only by log file.
THEIRS = ("H5DataWriter.tw", "RandomTransmitter.otx")
OURS = ("H5DataWriter.ow", "RandomTransmitter.otx2")
NAMES = {THEIRS[0]: "<writer>", OURS[0]: "<writer>", THEIRS[1]: "<sender>", OURS[1]: "<sender>"}
MODES = {"normal": False, "swmr": True}
#: Differences from their tree that are ours on purpose, per mode (see docs/file-format.md,
#: "Additions relative to Constellation"); anything else in the comparison fails the test.
OUR_ADDITIONS: dict[str, list[str]] = {"normal": [], "swmr": ["+ /<sender>/meta:json @sequence"]}


def _config(writer: str, tx: str, out: Path, swmr: bool) -> dict[str, Any]:
    writer_type, writer_name = writer.split(".")
    return {
        writer_type: {
            writer_name: {
                "output_directory": str(out),
                "allow_concurrent_reading": swmr,
                "_data": {"receive_from": [tx]},
            }
        },
        "RandomTransmitter": {
            tx.split(".")[1]: {"block_size": 24, "number_of_blocks": 2, "rate": 200, "seed": 5}
        },
    }


def _record_both_modes(ctl: Any, writer: str, tx: str, out: Path) -> dict[str, Path]:
    """Initialise, launch and run once per mode; returns the file of each mode."""
    files = {}
    ctl.await_satellites([writer, tx], timeout=20)
    for mode, swmr in MODES.items():
        _ok(ctl.initialize(_config(writer, tx, out, swmr)))
        ctl.await_state("INIT", 20)
        _ok(ctl.launch())
        ctl.await_state("ORBIT", 20)
        _run(ctl, f"layout_{mode}", [writer], [tx], 1.0)
        _ok(ctl.land())
        ctl.await_state("INIT", 20)
        files[mode] = out / f"data_layout_{mode}.h5"
    return files


def test_our_file_tree_is_theirs(theirs: Any, processes: Any, group: str, tmp_path: Path) -> None:
    from controller import Controller

    # their writer, our transmitter (ours first: THEIR_CHIRP_RACE in test_interop.py)
    processes("SatelliteRandomTransmitter", "otx", *CHIRP)
    with Controller(group, interface=LOOPBACK, discovery="chirp", name="OurCtrl") as ctl:
        ctl.await_satellites([THEIRS[1]], timeout=20)
        theirs("SatelliteH5DataWriter", "tw")
        their_files = _record_both_modes(ctl, *THEIRS, tmp_path / "theirs")

    # our writer, the same transmitter configuration, in a group of its own
    ours = unique_group("layout")
    processes("SatelliteRandomTransmitter", "otx2", *CHIRP, group_name=ours)
    processes("SatelliteH5DataWriter", "ow", *CHIRP, group_name=ours)
    with Controller(ours, interface=LOOPBACK, discovery="chirp", name="OurCtrl") as ctl:
        our_files = _record_both_modes(ctl, *OURS, tmp_path / "ours")

    for mode in MODES:
        their_tree = describe(their_files[mode], NAMES)
        our_tree = describe(our_files[mode], NAMES)
        assert "/<sender>/data_<seq>/block_01" in their_tree or mode == "swmr"
        assert "/<sender>/data_idx" in their_tree or mode == "normal"
        (tmp_path / f"trees_{mode}.txt").write_text(
            "\n".join([*map(str, their_tree.items()), "---", *map(str, our_tree.items())])
        )
        assert compare(their_tree, our_tree) == OUR_ADDITIONS[mode], mode
        _our_reader_reads(their_files[mode], THEIRS[1], mode)


def _our_reader_reads(path: Path, sender: str, mode: str) -> None:
    """constellation.reader decodes their file completely: EOR, BOR and every record."""
    from constellation.reader import open_run
    from tests.integration.test_file_format_doc import doc_example

    doc: dict[str, Any] = {}  # the plain-h5py decoder of docs/file-format.md, on their file
    exec(compile(doc_example(), "docs/file-format.md", "exec"), doc)
    [(name, (doc_count, doc_meta))] = doc["summary"](path).items()
    assert name == sender and doc_meta["run_id"] == f"layout_{mode}"
    expected = random_records(24, 2, 5)
    with open_run(path) as run:
        assert run.senders == [sender] and run.mode == mode
        assert run.writers == [THEIRS[0]]
        assert run.writer_info(THEIRS[0])["constellation_version"] == "1.0.2"
        assert run.bor(sender)["user_tags"] == {"block_size": 24, "number_of_blocks": 2, "seed": 5}
        eor = run.eor(sender)
        assert eor is not None and eor["run_metadata"]["run_id"] == f"layout_{mode}"
        count = run.record_count(sender)
        assert count == eor["run_metadata"]["data_records"] == doc_count > 50
        for position, record in enumerate(run.records(sender)):
            assert record.sequence == position + 1
            want = expected[position % len(expected)]
            assert [bytes(block) for block in record.blocks] == list(want), position


def test_additions_are_documented() -> None:
    """Every addition of OUR_ADDITIONS appears, path by path, in docs/file-format.md."""
    text = (REPO / "docs" / "file-format.md").read_text()
    section = text.split("## Additions relative to Constellation", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([+~-] [^`]+)`", section))
    listed = {line for lines in OUR_ADDITIONS.values() for line in lines}
    assert listed <= documented, sorted(listed - documented)


def test_comparison_sees_the_old_nested_layout(tmp_path: Path) -> None:
    """The tree comparison fails on what issue 12 was about: senders inside the writer group."""
    from tests.unit.h5.support import WRITER, make_records, nest_senders, new_run

    paths = []
    for name in ("root", "nested"):
        run = new_run(tmp_path / name, True, ["T.t"])
        run.begin_sender("T.t", {"a": 1}, {})
        run.write_records("T.t", make_records(1, 3))
        run.end_sender("T.t", {}, {"run_id": "r"})
        run.close()
        paths.append(run.path)
    nest_senders(paths[1])
    names = {WRITER: "<writer>", "T.t": "<sender>"}
    root, nested = (describe(path, names) for path in paths)
    assert compare(root, root) == []
    diff = compare(root, nested)
    assert "- /<sender>/data_idx" in diff and "+ /<writer>/<sender>/data_idx" in diff
