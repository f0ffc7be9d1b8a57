"""Offline reader of H5DataWriter files (docs/file-format.md) and the ``constellation-h5`` command.

Needs only h5py and numpy (plus ``hdf5plugin`` for compressed files, imported when present)::

    from constellation.reader import open_run

    with open_run("data_run42.h5") as run:
        for sender in run.senders:
            print(sender, run.record_count(sender), run.eor(sender))
            for record in run.records(sender):
                ...  # record.sequence, record.tags, record.blocks (typed numpy arrays)
"""

from typing import Any

from constellation.reader.h5reader import (
    RawRecord,
    Record,
    RunReader,
    SenderStats,
    open_run,
    unflatten,
)
from constellation.reader.many import decode_many

__all__ = [
    "RawRecord",
    "Record",
    "RunReader",
    "SenderStats",
    "decode_many",
    "open_remote",
    "open_run",
    "unflatten",
]


def open_remote(*args: Any, **kwargs: Any) -> Any:
    """:func:`constellation.reader.remote.open_remote` (imported on first use: needs httpx)."""
    from constellation.reader.remote import open_remote as _open_remote

    return _open_remote(*args, **kwargs)
