"""check_until: an until condition against the satellites present and their declared metrics."""

from __future__ import annotations

from controller.runs import Until
from controller.until_check import UntilVerdict, check_until

PRESENT = ["RandomTransmitter.tx", "DevNullReceiver.rx"]
DECLARED = {
    "randomtransmitter.tx": ["STATE", "TX_RECORDS", "TX_BYTES"],
    "devnullreceiver.rx": ["STATE", "RX_RECORDS", "RX_BYTES"],
}


def test_a_metric_someone_declares_passes_in_any_case() -> None:
    assert check_until(Until("rx_records", 5), PRESENT, DECLARED) == UntilVerdict()
    tx = Until("TX_RECORDS", 5, "randomtransmitter.TX")
    assert check_until(tx, PRESENT, DECLARED) == UntilVerdict()


def test_a_misspelt_metric_is_named_with_the_group_list_and_a_suggestion() -> None:
    verdict = check_until(Until("RX_RECORD", 5000), PRESENT, DECLARED)
    assert verdict.warning is None
    assert verdict.error == (
        "--until metric RX_RECORD is not declared by any satellite of this group "
        "(did you mean RX_RECORDS?); the group declares: "
        "RX_BYTES, RX_RECORDS, STATE, TX_BYTES, TX_RECORDS"
    )


def test_no_suggestion_when_nothing_is_close() -> None:
    verdict = check_until(Until("TEMPERATURE", 30), PRESENT, DECLARED)
    assert verdict.error is not None and "did you mean" not in verdict.error


def test_the_named_satellite_must_be_present() -> None:
    verdict = check_until(Until("TX_RECORDS", 1, "Example.tx"), PRESENT, DECLARED)
    assert verdict.error == (
        "--until names Example.tx, which is not a satellite of this group "
        "(present: DevNullReceiver.rx, RandomTransmitter.tx)"
    )


def test_the_named_satellite_must_declare_the_metric_itself() -> None:
    verdict = check_until(Until("RX_RECORDS", 1, "RandomTransmitter.tx"), PRESENT, DECLARED)
    assert verdict.error == (
        "--until metric RX_RECORDS is not declared by RandomTransmitter.tx "
        "(did you mean TX_RECORDS?); it declares: STATE, TX_BYTES, TX_RECORDS"
    )


def test_a_silent_satellite_makes_it_a_warning_not_an_error() -> None:
    partial = {"randomtransmitter.tx": DECLARED["randomtransmitter.tx"]}
    verdict = check_until(Until("RX_RECORD", 5), PRESENT, partial)
    assert verdict.error is None
    assert verdict.warning == (
        "cannot check --until metric RX_RECORD: no metric list from DevNullReceiver.rx"
    )
    # ... but a metric the silent one is not asked for is still judged.
    named = check_until(Until("RX_RECORDS", 5, "RandomTransmitter.tx"), PRESENT, partial)
    assert named.error is not None


def test_an_empty_group() -> None:
    verdict = check_until(Until("RX_RECORDS", 5), [], {})
    assert verdict.error is not None and verdict.error.endswith("the group declares: none")
