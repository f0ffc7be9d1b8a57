"""The console banner's command examples name a satellite the group has."""

from __future__ import annotations

from controller.console_shell import banner_text


def _commands(text: str) -> str:
    return next(line for line in text.splitlines() if "commands:" in line).strip()


def test_examples_use_the_first_satellite_present() -> None:
    text = banner_text("lab", ["RandomTransmitter.t1", "DevNullReceiver.r"])
    assert text.startswith("Constellation controller console, group lab\n")
    assert _commands(text) == (
        "commands: constellation.launch(), constellation.DevNullReceiver.launch(), "
        "constellation.DevNullReceiver.r.launch()"
    )


def test_a_name_that_is_no_identifier_uses_the_subscript_form() -> None:
    assert _commands(banner_text("lab", ["Example.1a"])) == (
        "commands: constellation.launch(), constellation.Example.launch(), "
        'constellation["Example.1a"].launch()'
    )


def test_an_empty_group_gets_placeholders() -> None:
    assert _commands(banner_text("lab", [])) == (
        "commands: constellation.launch(), constellation.<Type>.launch(), "
        "constellation.<Type>.<Name>.launch()"
    )
