"""Test-only slow storage, loaded by Python at start-up when this directory is on PYTHONPATH.

tests/faults/test_slow_storage.py starts H5DataWriter with this directory on PYTHONPATH and
``CONSTELLATION_TEST_SLOW_FLUSH_S`` set: every ``RunFile.flush`` then takes that much longer, as
on a stalled disk, and is logged (``start``/``end`` lines) to ``CONSTELLATION_TEST_FLUSH_LOG``.
Nothing of this is part of the package; without the variables it does nothing.
"""

from __future__ import annotations

import os

_DELAY = float(os.environ.get("CONSTELLATION_TEST_SLOW_FLUSH_S", "0") or 0)

if _DELAY > 0:
    import time
    from pathlib import Path

    from satellites.h5datawriter.runfile import RunFile

    _LOG = Path(os.environ["CONSTELLATION_TEST_FLUSH_LOG"])
    _flush = RunFile.flush

    def _slow_flush(self: RunFile) -> None:
        with _LOG.open("a") as log:
            log.write("start\n")
        time.sleep(_DELAY)
        _flush(self)
        with _LOG.open("a") as log:
            log.write("end\n")

    RunFile.flush = _slow_flush  # type: ignore[method-assign]
