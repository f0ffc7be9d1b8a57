"""When the interop set-up skips (index unreachable) and when it is an error (anything else)."""

from __future__ import annotations

from tests.interop.conftest import _index_unreachable, _pip_messages

OFFLINE = """\
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after \
connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection \
object>: Failed to establish a new connection: [Errno -3] Temporary failure in name \
resolution')': /simple/constellationdaq/
ERROR: Could not find a version that satisfies the requirement constellationdaq[hdf5]==1.0.2 \
(from versions: none)
ERROR: No matching distribution found for constellationdaq[hdf5]==1.0.2
"""
MISSING_VERSION = """\
ERROR: Could not find a version that satisfies the requirement constellationdaq[hdf5]==9.9.9 \
(from versions: 0.3, 1.0.2)
ERROR: No matching distribution found for constellationdaq[hdf5]==9.9.9
"""
BUILD_FAILURE = "error: subprocess-exited-with-error\nERROR: Failed building wheel for h5py\n"


def test_unreachable_index_is_recognised_and_pip_is_quoted() -> None:
    assert _index_unreachable(OFFLINE)
    reason = _pip_messages(OFFLINE)
    assert "Temporary failure in name resolution" in reason
    assert "ERROR: No matching distribution found" in reason


def test_a_reachable_index_without_the_version_is_not_a_skip() -> None:
    assert not _index_unreachable(MISSING_VERSION)


def test_a_build_failure_is_not_a_skip() -> None:
    assert not _index_unreachable(BUILD_FAILURE)
    assert _pip_messages(BUILD_FAILURE) == "ERROR: Failed building wheel for h5py"
