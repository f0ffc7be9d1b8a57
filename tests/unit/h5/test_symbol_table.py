"""Normal-layout sender groups are symbol-table groups (flat cost per record), SWMR ones are not."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from h5py import h5o

from constellation.reader import open_run
from satellites.h5datawriter.symbol_table import create_symbol_table_group
from tests.unit.h5.support import make_records, new_run

_SYMBOL_TABLE_MESSAGE = 0x0011  # HDF5 object header message type of old-style groups


def _is_symbol_table(group: h5py.Group) -> bool:
    return bool(h5o.get_info(group.id).hdr.mesg.present & (1 << _SYMBOL_TABLE_MESSAGE))


def test_group_is_a_symbol_table_in_a_current_format_file(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w", libver=("v108", "latest"), track_order=False) as f:
        group = create_symbol_table_group(f, "Type.name")
        assert _is_symbol_table(group) and not _is_symbol_table(f.create_group("plain"))
        for seq in (3, 1, 2):
            group.create_group(f"data_{seq:09d}").create_dataset("block_00", data=[seq])
        with pytest.raises(ValueError, match="already exists"):
            create_symbol_table_group(f, "Type.name")
        create_symbol_table_group(f, "Other.name")  # the template is reused
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert list(f) == ["Other.name", "Type.name", "plain"]
        assert list(f["Type.name"]) == [f"data_{seq:09d}" for seq in (1, 2, 3)]
        assert f["Type.name/data_000000002/block_00"][()].tolist() == [2]


@pytest.mark.parametrize("swmr", [False, True])
def test_runfile_sender_groups(tmp_path: Path, swmr: bool) -> None:
    run = new_run(tmp_path, swmr, ["T.t"])
    run.begin_sender("T.t", {"a": 1}, {"b": 2})
    run.write_records("T.t", make_records(1, 300))
    run.end_sender("T.t", {}, {"data_records": 300})
    run.close()
    with h5py.File(run.path, "r") as f:
        assert _is_symbol_table(f["T.t"]) is not swmr
        assert dict(f["T.t/BOR/user_tags"].attrs) == {"a": 1}
    with open_run(run.path) as reader:
        assert [record.sequence for record in reader.records("T.t")] == list(range(1, 301))
