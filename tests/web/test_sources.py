"""The runs and live-data adapters against small fakes (the real modules come separately)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from controller.web.live_source import LiveSource, RateWindow, ValueWindow, histogram
from controller.web.runs_source import RunsSource
from tests.helpers import wait_for


class FakeCatalog:
    def __init__(self) -> None:
        self.refreshed = 0
        self.comments: dict[str, str] = {}

    def refresh(self) -> None:
        self.refreshed += 1

    def runs(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "run_id": "run_2",
                "condition": "GOOD",
                "senders": {"Tx.a": 10, "Tx.b": 5},
                "comment": self.comments.get("run_2"),
            }
        ][:limit]

    def set_comment(self, run_id: str, text: str) -> None:
        self.comments[run_id] = text


def test_runs_from_a_catalog() -> None:
    catalog = FakeCatalog()
    source = RunsSource(None, catalog=catalog)
    source.set_comment("run_2", "beam unstable")
    (run,) = source.runs()
    assert run == {
        "run_id": "run_2",
        "condition": "GOOD",
        "senders": {"Tx.a": 10, "Tx.b": 5},
        "records": 15,
        "comment": "beam unstable",
    }
    assert catalog.refreshed == 1


def test_runs_not_available_says_why(tmp_path: Path) -> None:
    assert "--data-dir" in RunsSource(None).reason
    source = RunsSource(tmp_path)
    if source.available:  # the run catalog is installed: it must read an empty directory
        assert source.runs() == []
        source.close()
        assert not source.available and source.runs() == []
    else:
        assert source.reason.startswith("runs: not available")
        assert source.runs() == []
        with pytest.raises(LookupError):
            source.set_comment("run_1", "x")


def test_histogram() -> None:
    hist = histogram([np.array([0, 1, 1, 2]), b"\x02\x02"], bins=3)
    assert hist["counts"] == [1, 2, 3]
    assert hist["edges"] == [0.0, 2 / 3, 4 / 3, 2.0]
    assert histogram([]) == {"edges": [], "counts": []}


class FakeStreamer:
    """Gives one frame (an EOR and 8 values of Tx.a), then nothing; records how it was opened."""

    opened: list[dict[str, Any]] = []
    instances: list[FakeStreamer] = []

    def __init__(self, group: str, senders: Any, **kwargs: Any) -> None:
        FakeStreamer.opened.append({"group": group, "senders": senders, **kwargs})
        FakeStreamer.instances.append(self)
        self.sent = False
        self.closed = threading.Event()
        self.stats = {
            "Tx.a": SimpleNamespace(
                received=8, dropped=2, bytes=64, last_sequence=10, run_id="run_1"
            )
        }

    def read(self, timeout: float) -> Any:
        if self.sent:
            return None
        self.sent = True
        rec = SimpleNamespace(blocks=[np.arange(8)])
        eor = SimpleNamespace(sender="Tx.a", run_id="run_1", run_metadata={"condition": "GOOD"})
        return SimpleNamespace(records={"Tx.a": [rec], "Tx.b": [rec]}, events=[eor])

    def close(self) -> None:
        self.closed.set()


def test_live_source_publishes_rates_histogram_and_eor_conditions() -> None:
    published: list[Any] = []
    eors: list[tuple[str, str, str]] = []
    got = threading.Event()

    def publish(events: list[Any]) -> None:
        published.extend(events)
        if any("histogram" in data for _, data in events):
            got.set()

    live = LiveSource(
        "g",
        "127.0.0.1",
        publish,
        streamer_factory=FakeStreamer,
        on_eor=lambda *a: eors.append(a),
        period=0.01,
    )
    assert live.available
    live.choose("TX.A")  # any case
    assert FakeStreamer.opened == []  # no receiver yet: no streamer
    live.want(1)  # the group has a receiver
    assert got.wait(5)
    live.want(0)  # it left: the streamer is closed
    wait_for(lambda: FakeStreamer.instances[-1].closed.is_set(), 5, 0.01, "streamer closed")
    live.want(1)
    wait_for(lambda: len(FakeStreamer.opened) == 2, 5, 0.01, "a new streamer")
    live.close()
    assert FakeStreamer.instances[-1].closed.is_set()
    assert FakeStreamer.opened[-1]["policy"] == "latest"
    assert FakeStreamer.opened[-1]["senders"] is None  # every sender: rates of all
    kind, data = next(e for e in published if "histogram" in e[1])
    assert kind == "live" and data["sender"] == "TX.A"
    assert sum(data["histogram"]["counts"]) == 8 and data["histogram"]["values"] == 8
    assert data["rates"][0]["sender"] == "Tx.a" and data["rates"][0]["dropped"] == 2
    assert eors == [("Tx.a", "run_1", "GOOD")]


def test_rate_window_counts_records_the_reader_skipped() -> None:
    rates = RateWindow(window=2.0)
    stat = SimpleNamespace(received=0, dropped=0, bytes=0, last_sequence=0, run_id="r")
    assert rates.rows({"Tx.a": stat}, 10.0)[0]["records_per_s"] == 0.0
    later = SimpleNamespace(received=100, dropped=300, bytes=100_000, last_sequence=400, run_id="r")
    (row,) = rates.rows({"Tx.a": later}, 11.0)
    assert row["records_per_s"] == 400.0  # received + dropped: the sender's rate
    assert row["mb_per_s"] == 400 * 1000 / 1e6  # 1000 B per received record
    assert (row["received"], row["dropped"], row["records"]) == (100, 300, 400)


def test_value_window_is_bounded() -> None:
    window = ValueWindow(capacity=10)
    window.add([np.arange(6), b"\x01\x02\x03\x04\x05\x06"])
    assert len(window) == 6  # 12 > 10: the oldest array went
    window.add([np.arange(100)])
    assert len(window) == 10
    assert np.concatenate(window.values()).tolist() == list(range(90, 100))
    window.add([np.array(["ab"])])  # not numbers: its 8 bytes (UCS-4), the older array goes
    assert len(window) == 8


def test_live_source_without_module() -> None:
    live = LiveSource("g", None, lambda events: None)
    if not live.available:
        assert "not available" in live.reason
        with pytest.raises(LookupError):
            live.choose("Tx.a")
    live.disable("live data: off")
    assert not live.available and live.reason == "live data: off"
    with pytest.raises(LookupError):
        live.choose("Tx.a")
