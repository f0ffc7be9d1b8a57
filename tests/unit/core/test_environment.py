"""The CONSTELLATION_* knobs: parsed once, a malformed value named with its variable."""

from __future__ import annotations

import pytest

from constellation.core.environment import ProcessSettings
from constellation.errors import ConfigError


def test_defaults_when_unset_or_empty() -> None:
    assert ProcessSettings.from_environ({}) == ProcessSettings()
    assert ProcessSettings.from_environ({"CONSTELLATION_HEARTBEAT_SCALE": " "}) == ProcessSettings()


def test_values_are_parsed() -> None:
    settings = ProcessSettings.from_environ(
        {
            "CONSTELLATION_HEARTBEAT_SCALE": "0.2",
            "CONSTELLATION_METRIC_SCALE": "0.05",
            "CONSTELLATION_MAX_MESSAGE_SIZE": "65536",
            "CONSTELLATION_MALLOC_TUNING": "0",
        }
    )
    assert settings == ProcessSettings(0.2, 0.05, 65536, malloc_tuning=False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONSTELLATION_HEARTBEAT_SCALE", "fast"),
        ("CONSTELLATION_HEARTBEAT_SCALE", "0"),
        ("CONSTELLATION_METRIC_SCALE", "nan"),
        ("CONSTELLATION_METRIC_SCALE", "-1"),
        ("CONSTELLATION_MAX_MESSAGE_SIZE", "1.5"),
        ("CONSTELLATION_MAX_MESSAGE_SIZE", "0"),
        ("CONSTELLATION_MALLOC_TUNING", "off"),
    ],
)
def test_malformed_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as info:
        ProcessSettings.from_environ({name: value})
    assert info.value.key == name and repr(value) in str(info.value)
