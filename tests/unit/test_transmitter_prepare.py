"""send_record's record preparation: the numpy fast path matches the general path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from constellation.protocol.cdtp2 import DataRecord, decode_data_frame, encode_data_frame
from constellation.transmitter import _prepare, _prepare_array

ARRAYS = [
    np.arange(10, dtype=np.float32),
    np.arange(6, dtype=">u2"),
    np.arange(20, dtype=np.int64)[::2],  # not contiguous
    np.zeros((2, 3), dtype=np.uint8),
    np.arange(40_000, dtype=np.uint16),  # 80 000 bytes: a large block
]
TAGS: list[dict[str, Any] | None] = [None, {}, {"x": 1}, {"dtype": "uint16", "x": 1}]


@pytest.mark.parametrize("tags", TAGS)
@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_array_fast_path_equals_general_path(array: np.ndarray, tags: Any) -> None:
    fast = _prepare_array(array, tags)
    assert fast == _prepare(array, tags)
    record_tags, blocks, nbytes = fast
    assert blocks[0] is array and nbytes == array.nbytes
    frame = encode_data_frame("Tx.t", [DataRecord(1, record_tags, blocks)])
    (record,) = decode_data_frame(frame).records
    assert bytes(record.blocks[0]) == array.tobytes()
    native = array.dtype.byteorder in ("=", "|")
    default = array.dtype.name if native else array.dtype.str
    assert record.tags["dtype"] == (tags or {}).get("dtype", default)


def test_tags_are_copied_not_kept() -> None:
    tags = {"x": 1}
    record_tags, _, _ = _prepare_array(np.zeros(3), tags)
    tags["x"] = 2
    assert record_tags == {"x": 1, "dtype": "float64"}
    assert tags == {"x": 2}


def test_object_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match="Python objects"):
        _prepare_array(np.array([object()]), {"x": 1})
