"""Normal layout: batches of uniform records (refill the template and copy it, through libhdf5
directly or through h5py) and uniform batches from the wire give the same objects as records
written one by one, and a repeated sequence number is still refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from constellation.errors import OutputFileError
from constellation.protocol.cdtp2 import DataRecord, encode_data_frame
from constellation.protocol.cdtp2_uniform import UniformBatch, decode_uniform
from constellation.reader import open_run
from satellites.h5datawriter import libhdf5, normal_layout
from tests.unit.h5.support import Rec, new_run

SENDER = "RandomTransmitter.tx"
TAGS = [{}, {"dtype": "uint16", "source": "adc", "gain": 1.5}]
NESTED = {"nested": {"a": 1}}  # record lists with nested tags are written one by one


def _batch(
    start: int, count: int, tags: dict[str, Any], lengths: tuple[int, ...] = (8,)
) -> list[Rec]:
    return [
        Rec(s, dict(tags), [bytes([(s + k) % 256]) * n for k, n in enumerate(lengths)])
        for s in range(start, start + count)
    ]


def _read(path: Path) -> list[tuple[int, dict[str, Any], list[bytes]]]:
    with open_run(path) as run:
        return [
            (r.sequence, dict(r.tags), [np.asarray(b).tobytes() for b in r.blocks])
            for r in run.records(SENDER)
        ]


def _objects(path: Path) -> list[Any]:
    """Every record object with its attributes and datasets: names, dtypes, shapes, layouts."""
    out: list[Any] = []
    with h5py.File(path, "r") as h5file:
        for name, group in h5file[SENDER].items():
            attrs = sorted(
                (k, group.attrs.get_id(k).dtype.str, repr(group.attrs[k])) for k in group.attrs
            )
            dsets = [
                (k, d.dtype.str, d.shape, d.id.get_create_plist().get_layout(), d[()].tobytes())
                for k, d in group.items()
                if isinstance(d, h5py.Dataset)
            ]
            out.append((name, attrs, dsets))
    return out


def _write(directory: Path, batches: list[list[Rec]], uniform: bool = False) -> Path:
    run = new_run(directory, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    for batch in batches:
        message = decode_uniform(encode_data_frame(SENDER, batch)) if uniform else None
        if message is None:
            run.write_records(SENDER, batch)
        else:
            assert isinstance(message.batch, UniformBatch)
            run.write_uniform(SENDER, [message.batch])
    run.end_sender(SENDER, {}, {"data_records": sum(map(len, batches))})
    run.close()
    return run.path


def _run_batches(tags: dict[str, Any]) -> list[list[Rec]]:
    return [
        _batch(1, 3, tags),
        _batch(4, 50, tags),
        _batch(54, 20, {**tags, "x": 1}),
        _batch(74, 10, tags, (6, 0, 12)),
        _batch(84, 10, tags),
    ]


@pytest.mark.parametrize("tags", TAGS)
def test_uniform_batches_read_back_like_single_records(
    tmp_path: Path, tags: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _run_batches(tags)
    fast = _write(tmp_path / "fast", batches)
    calls: list[int] = []
    original = normal_layout.NormalLayout._write_rows

    def counting(self: Any, gid: Any, template: Any, sequences: Any, columns: Any) -> int:
        calls.append(len(sequences))
        return original(self, gid, template, sequences, columns)

    monkeypatch.setattr(normal_layout.NormalLayout, "_write_rows", counting)
    _write(tmp_path / "counted", batches)
    assert calls, "the uniform path was never taken"
    monkeypatch.undo()
    monkeypatch.setattr(libhdf5, "raw", lambda: None)  # rows through h5py
    through_h5py = _write(tmp_path / "h5py", batches)
    monkeypatch.setattr(normal_layout, "uniform_columns", lambda *a: None)
    slow = _write(tmp_path / "slow", [[r] for batch in batches for r in batch])
    assert _read(fast) == _read(slow)
    assert _objects(fast) == _objects(slow) == _objects(through_h5py)
    assert [seq for seq, _, _ in _read(fast)] == list(range(1, 94))


@pytest.mark.parametrize("tags", [*TAGS, NESTED])
def test_uniform_batches_from_the_wire_match_their_records(
    tmp_path: Path, tags: dict[str, Any]
) -> None:
    batches = [*_run_batches(tags), _batch(94, 2, tags), _batch(96, 1, tags)]
    from_records = _write(tmp_path / "records", batches)
    from_uniform = _write(tmp_path / "uniform", batches, uniform=True)
    assert _objects(from_uniform) == _objects(from_records)
    assert _read(from_uniform) == _read(from_records)


def test_large_uniform_records_are_written_one_by_one(tmp_path: Path) -> None:
    size = normal_layout.TEMPLATE_LIMIT + 1
    batches = [_batch(1, 4, {"dtype": "uint8"}, (size,))]
    from_uniform = _write(tmp_path / "uniform", batches, uniform=True)
    assert _read(from_uniform) == [(r.sequence, r.tags, r.blocks) for r in batches[0]]


def test_direct_calls_reach_h5pys_library() -> None:
    raw = libhdf5.raw()
    assert raw is not None, "ctypes cannot reach h5py's libhdf5 on this platform"
    assert raw.same_library()


def test_direct_calls_are_refused_for_another_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libhdf5.h5py.h5, "get_libversion", lambda: (0, 0, 1))
    assert not libhdf5.RawHdf5(libhdf5.ctypes.CDLL(libhdf5.h5py.defs.__file__)).same_library()
    assert libhdf5._load() is None  # and the writer then goes through h5py only


def test_duplicate_sequence_in_a_uniform_batch_is_refused(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, _batch(1, 5, {}))
    with pytest.raises(OutputFileError, match="duplicate sequence number 3"):
        run.write_records(SENDER, _batch(6, 4, {}) + _batch(3, 1, {}))
    run.close()
    assert [seq for seq, _, _ in _read(run.path)][:9] == list(range(1, 10))


def test_duplicate_sequence_in_the_rows_of_a_wire_batch_is_refused(tmp_path: Path) -> None:
    run = new_run(tmp_path, False, [SENDER])
    run.begin_sender(SENDER, {}, {})
    run.write_records(SENDER, _batch(1, 5, {}) + _batch(20, 5, {}))
    message = decode_uniform(
        encode_data_frame(SENDER, [DataRecord(*r) for r in _batch(15, 10, {})])
    )
    assert message is not None and isinstance(message.batch, UniformBatch)
    with pytest.raises(OutputFileError, match="duplicate sequence number 20"):
        run.write_uniform(SENDER, [message.batch])
    run.close()
    assert [seq for seq, _, _ in _read(run.path)] == [*range(1, 6), *range(15, 25)]
