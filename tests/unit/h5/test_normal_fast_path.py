"""Normal layout: batches of uniform records (refill the template and copy it) read back exactly
like records written one by one, and a repeated sequence number is still refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from constellation.errors import OutputFileError
from constellation.reader import open_run
from satellites.h5datawriter import normal_layout
from tests.unit.h5.support import Rec, new_run

SENDER = "RandomTransmitter.tx"


def _batch(start: int, count: int, tags: dict[str, Any]) -> list[Rec]:
    return [Rec(s, dict(tags), [bytes([s % 256]) * 8]) for s in range(start, start + count)]


def _read(path: Path) -> list[tuple[int, dict[str, Any], list[bytes]]]:
    with open_run(path) as run:
        return [
            (r.sequence, dict(r.tags), [np.asarray(b).tobytes() for b in r.blocks])
            for r in run.records(SENDER)
        ]


def _write(directory: Path, batches: list[list[Rec]]) -> Path:
    run = new_run(directory, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    for batch in batches:
        run.write_records(SENDER, batch)
    run.end_sender(SENDER, {}, {"data_records": sum(map(len, batches))})
    run.close()
    return run.path


@pytest.mark.parametrize("tags", [{}, {"dtype": "uint16", "source": "adc", "gain": 1.5}])
def test_uniform_batches_read_back_like_single_records(
    tmp_path: Path, tags: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = [_batch(1, 3, tags), _batch(4, 50, tags), _batch(54, 20, {**tags, "x": 1})]
    batches.append(_batch(74, 10, tags))
    fast = _write(tmp_path / "fast", batches)
    calls: list[int] = []
    original = normal_layout.NormalLayout._write_uniform

    def counting(self: Any, gid: Any, uniform: Any, rest: Any) -> int:
        calls.append(len(rest))
        return original(self, gid, uniform, rest)

    monkeypatch.setattr(normal_layout.NormalLayout, "_write_uniform", counting)
    _write(tmp_path / "counted", batches)
    assert calls, "the uniform path was never taken"
    monkeypatch.setattr(normal_layout.NormalLayout, "_uniform_template", lambda *a: None)
    slow = _write(tmp_path / "slow", [[r] for batch in batches for r in batch])
    assert _read(fast) == _read(slow)
    assert [seq for seq, _, _ in _read(fast)] == list(range(1, 84))


def test_duplicate_sequence_in_a_uniform_batch_is_refused(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, _batch(1, 5, {}))
    with pytest.raises(OutputFileError, match="duplicate sequence number 3"):
        run.write_records(SENDER, _batch(6, 4, {}) + _batch(3, 1, {}))
    run.close()
    assert [seq for seq, _, _ in _read(run.path)][:9] == list(range(1, 10))
