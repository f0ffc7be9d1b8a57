"""A lock between test workers: Constellation's own processes and garbage on the CHIRP port.

Constellation 1.0.2 satellites go to ERROR on a malformed CHIRP datagram, so the test that
sends garbage to UDP 7123 must not run while an interop test (``pytest -n``: maybe on the other
worker) has their processes up. Interop fixtures hold the lock shared while their processes
live; the garbage test holds it exclusively. The lock file lives in the system's temp directory,
which every worker of a session shares.
"""

from __future__ import annotations

import fcntl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_PATH = Path(tempfile.gettempdir()) / "constellation-tests-chirp-port.lock"


@contextmanager
def their_processes_running() -> Iterator[None]:
    """Held (shared) while processes of Constellation itself run."""
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def no_processes_of_theirs(timeout: float = 300.0) -> Iterator[None]:
    """Held (exclusive) while garbage goes to the CHIRP port; waits for interop tests to end."""
    deadline = time.monotonic() + timeout
    with open(LOCK_PATH, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"interop tests held {LOCK_PATH} for {timeout} s") from None
                time.sleep(0.05)  # poll interval of a non-blocking lock, not synchronisation
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
