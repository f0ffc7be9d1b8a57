"""docs/satellites.md and ``Satellite<Type> --help`` come from the satellites' declarations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from constellation.describe import READY_MADE, describe, help_text, satellites_md
from tests.helpers import console_script

ROOT = Path(__file__).resolve().parents[2]


def test_satellites_md_is_current() -> None:
    current = (ROOT / "docs" / "satellites.md").read_text()
    assert current == satellites_md(), "run: python -m constellation.describe"


@pytest.mark.parametrize("spec", READY_MADE)
def test_help_lists_parameters_commands_and_metrics(spec: str) -> None:
    module, _, name = spec.partition(":")
    cls = getattr(__import__(module, fromlist=[name]), name)
    result = subprocess.run(
        [console_script(f"Satellite{name}"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    doc = describe(cls)
    assert help_text(doc) in result.stdout
    for param in doc.parameters:
        assert param.describe() in result.stdout
    assert "STATE: Current state name" in result.stdout
