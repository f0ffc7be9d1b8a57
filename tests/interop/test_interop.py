"""Interop with Constellation's own Python package (``constellationdaq`` 1.0.2), on loopback.

Their code runs only in subprocesses with the cached venv's python (see ``conftest.py``); our
satellites run from their console scripts with ``--discovery chirp -i 127.0.0.1``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import pytest

from tests.helpers import LOOPBACK, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

CHIRP = ("--discovery", "chirp")
#: THEIR_CHIRP_RACE: constellationdaq 1.0.2 answers a CHIRP REQUEST in its CHIRP thread by
#: iterating ``_registered_services`` while the satellite's main thread may still be adding
#: services (the DATA offer of a transmitter): "RuntimeError: dictionary changed size during
#: iteration" kills their CHIRP thread (chirpmanager.py, emit_offers) and the satellite stops
#: answering and discovering. Our satellites and controllers send REQUESTs when they start, so
#: tests start ours first and theirs afterwards.
#: Their PyRandomTransmitter has no rate parameter and sends as fast as it can; their own
#: H5DataWriter (one HDF5 group per record) cannot keep up and then needs minutes to drain the
#: backlog at stop. Small messages and a short queue keep the backlog (ZMQ HWM) small.
THEIR_TX_LIMITS = {"payload_threshold": 0, "queue_size": 64}


@pytest.fixture
def our_controller(group: str) -> Any:
    from controller import Controller

    ctl = Controller(group, interface=LOOPBACK, discovery="chirp", name="OurCtrl")
    try:
        yield ctl
    finally:
        ctl.close()


def _ok(replies: dict[str, Any]) -> None:
    bad = {name: str(reply) for name, reply in replies.items() if not reply.ok}
    assert not bad, bad


def _run(
    ctl: Any,
    run_id: str,
    receivers: list[str],
    transmitters: list[str],
    hold: float | Callable[[], bool],
) -> None:
    """Receivers enter the run first and leave it last (CDTP: PULL must be there for the BOR).

    ``hold``: until when the run goes on, a condition polled (with a timeout) or, for runs of
    their satellites only, a duration.
    """
    _ok(ctl.start(run_id, targets=receivers))
    ctl.await_state("RUN", 20, targets=receivers)
    _ok(ctl.start(run_id, targets=transmitters))
    ctl.await_state("RUN", 20, targets=transmitters)
    if callable(hold):
        wait_for(hold, timeout=60, what=f"records flowing in run {run_id}")
    else:
        # Their satellites publish no record counters (only RUN_ID and STATE metrics), so a run
        # of theirs alone is held for a fixed time: the run's length is what is tested here,
        # and the file's record count is checked afterwards.
        time.sleep(hold)
    _ok(ctl.stop(targets=transmitters))
    ctl.await_state("ORBIT", 30, targets=transmitters)
    _ok(ctl.stop(targets=receivers))
    ctl.await_state("ORBIT", 30, targets=receivers)


# --- 1: their ScriptableController steers our satellites --------------------------------------
def test_their_controller_steers_our_satellites(
    their_venv: Any, processes: Any, group: str, tmp_path: Path
) -> None:
    from constellation.reader.h5reader import open_run

    out_dir = tmp_path / "out"
    processes("SatelliteH5DataWriter", "ow", *CHIRP)
    processes("SatelliteRandomTransmitter", "otx", *CHIRP)
    sats = {
        "H5DataWriter.ow": {"output_directory": str(out_dir)},
        "RandomTransmitter.otx": {"block_size": 64, "rate": 500},
    }
    result = their_venv.run_script(
        "their_controller.py",
        {"group": group, "satellites": sats, "run_id": "interop1", "run_seconds": 1.0},
        cwd=tmp_path,
    )
    assert "error" not in result, result
    replies = result["replies"]
    for name in sats:
        assert replies["get_name"][name]["msg"] == name
        assert replies["get_state"][name]["msg"] == "NEW"
        assert "last_changed" in replies["get_state"][name]["meta"]
        assert replies["get_role"][name]["msg"] == "DYNAMIC"
        assert replies["get_version"][name]["success"], replies["get_version"][name]
        assert replies["get_commands"][name]["success"], replies["get_commands"][name]
        for cmd in ("initialize", "launch", "start", "stop", "land"):
            assert replies[cmd][name]["success"], (cmd, replies[cmd][name])
            assert replies[cmd][name]["msg"] == "transitioning", replies[cmd][name]
            assert replies[cmd][name]["payload"] == cmd
        assert replies["get_run_id_after"][name]["msg"] == "interop1"
    assert result["states"]["land"] == dict.fromkeys(sats, "INIT")

    with open_run(out_dir / "data_interop1.h5") as run:
        sender = "RandomTransmitter.otx"
        assert sender in run.senders
        count = run.record_count(sender)
        assert count > 100
        eor = run.eor(sender)
        assert eor is not None
        assert eor["run_metadata"]["data_records"] == count
        assert eor["run_metadata"]["run_id"] == "interop1"
        seqs = [rec.sequence for rec in run.records(sender)]
        assert seqs == list(range(1, count + 1))


# --- 2: our Controller steers their satellites -------------------------------------------------
def test_our_controller_steers_their_satellites(
    theirs: Any, our_controller: Any, tmp_path: Path
) -> None:
    out_dir = tmp_path / "their_out"
    theirs("SatelliteH5DataWriter", "tw")
    theirs("SatellitePyRandomTransmitter", "ttx")
    ctl = our_controller
    names = ["H5DataWriter.tw", "PyRandomTransmitter.ttx"]
    ctl.await_satellites(names, timeout=20)
    for name in names:
        assert ctl.satellites[name].command("get_name").verb == name
    _ok(
        ctl.initialize(
            {
                "H5DataWriter": {"tw": {"output_directory": str(out_dir)}},
                "PyRandomTransmitter": {"ttx": {"block_size": 64, "_data": THEIR_TX_LIMITS}},
            }
        )
    )
    ctl.await_state("INIT", 20)
    _ok(ctl.launch())
    ctl.await_state("ORBIT", 20)
    _run(ctl, "interop2", ["H5DataWriter.tw"], ["PyRandomTransmitter.ttx"], 1.0)
    _ok(ctl.land())
    ctl.await_state("INIT", 20)
    assert ctl.states == dict.fromkeys(names, "INIT")

    with h5py.File(out_dir / "data_interop2.h5", "r") as h5:
        grp = h5["PyRandomTransmitter.ttx"]
        data = sorted(k for k in grp if k.startswith("data_"))
        assert len(data) > 10
        meta = dict(grp["EOR"]["run_metadata"].attrs)
        assert int(meta["data_records"]) == len(data)
        assert meta["run_id"] == "interop2"


# --- 3: mixed data paths ------------------------------------------------------------------------
def test_mixed_data_paths(theirs: Any, processes: Any, our_controller: Any, tmp_path: Path) -> None:
    """Their transmitter feeds our writer, ours feeds theirs; compared record by record."""
    from constellation.reader.h5reader import open_run
    from controller.telemetry import MetricWatcher
    from satellites.random_transmitter import random_records

    our_out, their_out = tmp_path / "our_out", tmp_path / "their_out"
    # ours first: see THEIR_CHIRP_RACE
    our_writer = processes("SatelliteH5DataWriter", "ow", *CHIRP)
    processes("SatelliteRandomTransmitter", "otx", *CHIRP)
    ctl = our_controller
    ctl.await_satellites(["H5DataWriter.ow", "RandomTransmitter.otx"], timeout=20)
    theirs("SatelliteH5DataWriter", "tw")
    theirs("SatellitePyRandomTransmitter", "ttx")
    receivers = ["H5DataWriter.tw", "H5DataWriter.ow"]
    transmitters = ["PyRandomTransmitter.ttx", "RandomTransmitter.otx"]
    ctl.await_satellites(receivers + transmitters, timeout=20)
    _await_discovered(ctl, our_writer, "PyRandomTransmitter.ttx", "DATA")
    config = {
        "H5DataWriter": {
            "tw": {
                "output_directory": str(their_out),
                "_data": {"receive_from": ["RandomTransmitter.otx"]},
            },
            "ow": {
                "output_directory": str(our_out),
                "_data": {"receive_from": ["PyRandomTransmitter.ttx"]},
            },
        },
        "PyRandomTransmitter": {
            "ttx": {"block_size": 48, "number_of_blocks": 2, "_data": THEIR_TX_LIMITS}
        },
        "RandomTransmitter": {"otx": {"block_size": 40, "rate": 300, "seed": 7}},
    }
    _ok(ctl.initialize(config))
    ctl.await_state("INIT", 20)
    _ok(ctl.launch())
    ctl.await_state("ORBIT", 20)
    with MetricWatcher(ctl) as metrics:

        def enough() -> bool:
            """Our writer got records of theirs, and our transmitter sent some to theirs."""
            got = metrics.latest("RX_RECORDS", "H5DataWriter.ow").get("H5DataWriter.ow")
            sent = metrics.latest("TX_RECORDS", "RandomTransmitter.otx").get(
                "RandomTransmitter.otx"
            )
            return got is not None and sent is not None and min(got.value, sent.value) >= 50

        _run(ctl, "interop3", receivers, transmitters, enough)
    _ok(ctl.land())
    ctl.await_state("INIT", 20)

    # theirs -> ours: every record has the transmitter's two fixed random blocks
    with open_run(our_out / "data_interop3.h5") as run:
        sender = "PyRandomTransmitter.ttx"
        assert run.senders == [sender]
        count = run.record_count(sender)
        assert count > 10
        assert run.bor(sender)["configuration"]["block_size"] == 48
        meta = run.eor(sender)["run_metadata"]
        assert meta["data_records"] == count
        assert meta["run_id"] == "interop3"
        first = None
        for expected_seq, rec in enumerate(run.records(sender), start=1):
            assert rec.sequence == expected_seq
            blocks = [bytes(b) for b in rec.blocks]
            assert [len(b) for b in blocks] == [48, 48]
            first = first or blocks
            assert blocks == first

    # ours -> theirs: record n holds random_records(...)[(n - 1) % 256]
    expected = random_records(40, 1, 7)
    with h5py.File(their_out / "data_interop3.h5", "r") as h5:
        grp = h5["RandomTransmitter.otx"]
        names = sorted(k for k in grp if k.startswith("data_"))
        assert len(names) > 10
        assert names == [f"data_{n:09}" for n in range(1, len(names) + 1)]
        for n, name in enumerate(names, start=1):
            blocks = [bytes(grp[name][b][()]) for b in sorted(grp[name])]
            assert blocks == [bytes(expected[(n - 1) % len(expected)][0])], name
        meta = dict(grp["EOR"]["run_metadata"].attrs)
        assert int(meta["data_records"]) == len(names)
        assert meta["run_id"] == "interop3"
        assert dict(grp["BOR"]["user_tags"].attrs)["seed"] == 7


# --- 4: heartbeats across implementations -------------------------------------------------------
def _await_discovered(ctl: Any, ours: Any, their_name: str, service: str) -> None:
    """Wait until our satellite process discovered ``service`` of ``their_name`` (re-REQUEST)."""
    from constellation.protocol.chirp import ServiceId

    def seen() -> bool:
        if f"discovered {their_name} {service}" in ours.output():
            return True
        ctl.discovery.request(ServiceId[service])
        return False

    wait_for(seen, timeout=15, interval=1.0, what=f"{their_name} {service} seen by {ours.name}")


def _await_heartbeat_links(ctl: Any, their: Any, ours: Any, their_name: str) -> None:
    """Wait until their satellite and ours subscribed to each other's heartbeats.

    Both implementations learn of a heartbeat service only from CHIRP OFFERs, which are sent
    once (at start and as answers to REQUESTs). A beacon that is missed is not repeated, so
    the controller re-sends REQUEST HEARTBEAT (everyone answers with an OFFER) while waiting:
    this test is about heartbeats, not about lost beacons (see docs/interop.md).
    """
    from constellation.protocol.chirp import ServiceId

    def linked() -> bool:
        theirs_sees_ours = their.output().count("Registered heartbeating check") >= 2
        ours_sees_theirs = f"discovered {their_name} HEARTBEAT" in ours.output()
        if not (theirs_sees_ours and ours_sees_theirs):
            ctl.discovery.request(ServiceId.HEARTBEAT)
            return False
        return True

    wait_for(linked, timeout=15, interval=1.0, what=f"heartbeat links with {their_name}")


def test_heartbeat_loss_interrupts_across(theirs: Any, processes: Any, our_controller: Any) -> None:
    ctl = our_controller
    ours = processes("SatelliteRandomTransmitter", "hbo", *CHIRP)  # first: THEIR_CHIRP_RACE
    ctl.await_satellites(["RandomTransmitter.hbo"], timeout=20)
    their_a = theirs("SatellitePyRandomTransmitter", "hba")
    pair = ["PyRandomTransmitter.hba", "RandomTransmitter.hbo"]
    ctl.await_satellites(pair, timeout=20)
    _await_heartbeat_links(ctl, their_a, ours, "PyRandomTransmitter.hba")
    _ok(ctl.initialize({"_default": {}}, targets=pair))
    ctl.await_state("INIT", 20, targets=pair)
    _ok(ctl.launch(targets=pair))
    ctl.await_state("ORBIT", 20, targets=pair)

    their_a.kill()  # SIGKILL: no DEPART, only the heartbeats stop
    ctl.await_state("SAFE", 20, targets=["RandomTransmitter.hbo"])

    # and the other way round: a fresh one of theirs in ORBIT, then SIGKILL ours
    their_b = theirs("SatellitePyRandomTransmitter", "hbb")
    ctl.await_satellites(["PyRandomTransmitter.hbb"], timeout=20)
    _await_heartbeat_links(ctl, their_b, ours, "PyRandomTransmitter.hbb")
    pair = ["PyRandomTransmitter.hbb", "RandomTransmitter.hbo"]
    _ok(ctl.initialize({"_default": {}}, targets=pair))
    ctl.await_state("INIT", 20, targets=pair)
    _ok(ctl.launch(targets=pair))
    ctl.await_state("ORBIT", 20, targets=pair)
    ours.signal(signal.SIGKILL)
    ctl.await_state("SAFE", 20, targets=["PyRandomTransmitter.hbb"])


# --- 5: their Monitor receives our logs and metrics ------------------------------------------
def test_their_monitor_receives_our_logs(
    theirs: Any, processes: Any, our_controller: Any, tmp_path: Path
) -> None:
    mon_dir = tmp_path / "monitor"
    theirs("Monitor", "mon", "-o", str(mon_dir), "--metrics")
    processes("SatelliteRandomTransmitter", "logger", *CHIRP)
    ctl = our_controller
    ctl.await_satellites(["RandomTransmitter.logger"], timeout=20)
    log_csv = mon_dir / "log.csv"

    def our_lines() -> list[str]:
        text = log_csv.read_text(errors="replace") if log_csv.exists() else ""
        return [ln for ln in text.splitlines() if ",RandomTransmitter.logger," in ln]

    # the Monitor subscribes after discovering us; keep producing logs until they arrive
    def initialized_and_logged() -> list[str]:
        ctl.initialize({"_default": {}})
        lines = our_lines()
        return lines if any(",FSM," in ln and "initializing" in ln for ln in lines) else []

    lines = wait_for(initialized_and_logged, timeout=20, interval=0.5, what="our FSM logs")
    levels = {ln.split(",")[1] for ln in lines}
    assert levels <= {"TRACE", "DEBUG", "INFO", "WARNING", "STATUS", "CRITICAL"}, levels
    wait_for(
        lambda: list(mon_dir.glob("RandomTransmitter.logger.*.csv")),
        timeout=20,
        what="our metrics in the Monitor",
    )
