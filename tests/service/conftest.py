"""Fixtures of the data-service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from constellation.service.app import create_app
from tests.service.support import make_directory, serving


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    directory = tmp_path_factory.mktemp("runs")
    return directory, make_directory(directory)


@pytest.fixture(scope="module")
def server(run_dir: tuple[Path, dict[str, Path]]) -> Iterator[str]:
    with serving(create_app(run_dir[0])) as url:
        yield url
