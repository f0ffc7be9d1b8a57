"""Unit tests for controller.progress: run totals and receiver summaries from metric samples."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.progress import Progress, receiver_summaries, run_counts
from controller.telemetry import Sample


class Watcher:
    def __init__(self, samples: dict[str, dict[str, Sample]]) -> None:
        self.samples = samples

    def latest(self, metric: str, satellite: str | None = None) -> dict[str, Any]:
        return dict(self.samples.get(metric, {}))


def sample(value: Any, rate: float | None = None) -> Sample:
    return Sample(value, "", 0.0, rate)


def test_counts_sum_senders_and_receivers() -> None:
    counts = run_counts(
        Watcher(
            {
                "TX_RECORDS": {"T.a": sample(10, 5.0), "T.b": sample(20, 5.0)},
                "RX_RECORDS": {"R.r": sample(25)},
            }
        )
    )
    assert (counts.sent, counts.sent_rate, counts.received) == (30, 10.0, 25)
    assert counts.words() == ["sent 30 (10/s)", "received 25"]


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_received_is_never_shown_above_sent(sent: int, received: int) -> None:
    counts = run_counts(
        Watcher({"TX_RECORDS": {"T.a": sample(sent)}, "RX_RECORDS": {"R.r": sample(received)}})
    )
    assert counts.received == min(sent, received)


def test_no_watcher_no_counts() -> None:
    assert run_counts(None).words() == []


def test_receiver_summaries_with_and_without_condition() -> None:
    summaries = receiver_summaries(
        Watcher(
            {
                "RX_RECORDS": {"H5DataWriter.w": sample(6017), "Their.r": sample(5)},
                "RX_BYTES": {"H5DataWriter.w": sample(6 * 2**20)},
                "RUN_CONDITION": {"H5DataWriter.w": sample("INCOMPLETE")},
            }
        )
    )
    assert [str(s) for s in summaries] == [
        "H5DataWriter.w: 6,017 records, 6.0 MiB, condition INCOMPLETE",
        "Their.r: 5 records, condition unknown (no RUN_CONDITION metric)",
    ]
    assert not summaries[0].good and summaries[1].condition is None


def test_say_prints_on_its_own_line_off_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, "r1")
    progress(0.0, 10.0, None)
    progress.say("stopping")
    progress(1.0, 10.0, None)
    progress.done()
    assert out.getvalue().splitlines() == [
        "r1 [....................] 00:00 / 00:10",
        "stopping",
        "r1 [##..................] 00:01 / 00:10",
    ]


def test_failure_lines_show_the_cause_once() -> None:
    from controller.cli import failure_lines

    cause = "ERROR: OutputFileError: cannot create /data/run_1.h5: No space left on device"
    lines = failure_lines(
        {
            "RandomTransmitter.t1": f"SAFE: Interrupted: H5DataWriter.w failed ({cause})",
            "H5DataWriter.w": cause,
            "Example.x": "ERROR: RuntimeError in do_starting: no beam",
        }
    )
    assert lines == [
        "Example.x: ERROR: RuntimeError in do_starting: no beam",
        f"H5DataWriter.w: {cause}",
        "RandomTransmitter.t1: SAFE (reacted to H5DataWriter.w)",
    ]
    assert sum(cause in line for line in lines) == 1
