"""Unit tests for controller.conditions.check_receivers: a split data stream is refused."""

from __future__ import annotations

import pytest

from constellation.errors import ConfigError
from controller.conditions import check_receivers, receiver_sources

TX = ["RandomTransmitter.t1", "RandomTransmitter.t2"]


def test_one_receiver_per_transmitter_passes() -> None:
    configs = {
        "H5DataWriter.w": {"_data": {"receive_from": ["RandomTransmitter.t1"]}},
        "DevNullReceiver.d": {"_data": {"receive_from": ["RandomTransmitter.t2"]}},
        "RandomTransmitter.t1": {"rate": 10},
    }
    check_receivers(configs, TX)


def test_two_implicit_receivers_are_refused_naming_both() -> None:
    configs = {"H5DataWriter.w": {}, "DevNullReceiver.d": {}}
    with pytest.raises(ConfigError) as info:
        check_receivers(configs, TX)
    assert info.value.key == "H5DataWriter.w._data.receive_from"
    text = str(info.value)
    assert "DevNullReceiver.d" in text and "H5DataWriter.w" in text
    assert "RandomTransmitter.t1" in text and "live tap" in text


def test_explicit_overlap_is_refused_case_insensitively() -> None:
    configs = {
        "H5DataWriter.w": {"_data": {"receive_from": ["RandomTransmitter.T1"]}},
        "Custom.x": {"_data": {"receive_from": "randomtransmitter.t1"}},
    }
    with pytest.raises(ConfigError, match="two receivers"):
        check_receivers(configs, TX)


def test_implicit_receiver_takes_every_transmitter_but_itself() -> None:
    sources = receiver_sources({"Relay.Writer": {}, "X.y": {}}, [*TX, "Relay.Writer"])
    assert sources == {}  # type "Relay" is no receiver type
    sources = receiver_sources({"EchoWriter.a": {}}, [*TX, "EchoWriter.a"])
    assert sources == {"EchoWriter.a": TX}


def test_non_receivers_are_ignored() -> None:
    check_receivers({"Example.a": {}, "Example.b": {}, "RandomTransmitter.t1": {}}, TX)
