"""``open_remote`` against a live service: same answers as ``open_run``, cache, follow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from constellation.errors import InputFileError
from constellation.reader import open_remote, open_run
from constellation.reader.remote_cache import CHUNK, RecordCache
from constellation.service.app import create_app
from satellites.h5datawriter.runfile import RunFile
from tests.service.support import TX, WRITER, records, serving

Files = tuple[Path, dict[str, Path]]


@pytest.mark.parametrize("run_id", ["run1", "run2", "run3"])
def test_same_api_as_open_run(server: str, run_dir: Files, run_id: str) -> None:
    with open_run(run_dir[0] / f"data_{run_id}.h5") as local, open_remote(server, run_id) as run:
        assert run.senders == local.senders and run.writers == local.writers
        for sender in local.senders:
            assert run.bor(sender) == local.bor(sender)
            assert run.eor(sender) == local.eor(sender)
            assert run.record_count(sender) == local.record_count(sender)
            assert run.layout(sender) == local.layout(sender)
            mine, theirs = list(run.records(sender, start=3)), list(local.records(sender, 3))
            assert [r.sequence for r in mine] == [r.sequence for r in theirs]
            assert [r.tags for r in mine] == [r.tags for r in theirs]
            for a, b in zip(mine, theirs, strict=True):
                assert all(
                    x.dtype == y.dtype and np.array_equal(x, y)
                    for x, y in zip(a.blocks, b.blocks, strict=True)
                )
        assert run.array(TX, 0, 4).shape == (4, 1, 32)
        assert [r.sequence for r in run.follow(TX, start=17)] == [18, 19, 20]


def test_errors(server: str) -> None:
    with pytest.raises(InputFileError, match="404"):
        open_remote(server, "nosuch")
    with pytest.raises(InputFileError, match="truncated"):
        open_remote(server, "cut")
    with open_remote(server, "run1") as run, pytest.raises(KeyError, match="Nobody"):
        run.record_count("Nobody.x")


def test_cache_serves_complete_chunks(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with RunFile.create(runs, "big", WRITER) as run:
        run.begin_sender(TX, {}, {})
        run.write_records(TX, records(1, CHUNK + 10, size=4))
        run.end_sender(TX, {}, {"run_id": "big"})
    cache = RecordCache(tmp_path / "cache")
    with serving(create_app(runs)) as url, open_remote(url, "big", cache=cache) as run:
        assert len(list(run.records(TX))) == CHUNK + 10
        assert cache.hits == 0
        assert len(list(run.records(TX, start=5))) == CHUNK + 5
        assert cache.hits == 1  # the complete first chunk; the tail is fetched again
    again = RecordCache(tmp_path / "cache")  # a new process: from the cache directory
    assert again.get("big", TX, 0) is not None and again.get("big", TX, 1) is None
