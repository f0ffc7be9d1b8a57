"""Leak check used by the autouse fixture of tests/conftest.py.

A :class:`Snapshot` records the threads, file descriptors, socket connections and child
processes of the test process. :func:`leaks_after` polls (with a timeout) until everything a
test started is gone again and returns a description of what was left, empty if nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass

import psutil

#: Threads that outlive a test by design; each entry says why. Everything else must be gone.
ALLOWED_THREADS: tuple[tuple[re.Pattern[str], str], ...] = (
    # python-zeroconf runs one asyncio loop thread for the whole process (a library singleton,
    # shared by every Zeroconf instance and never stopped).
    (re.compile(r"^zeroconf"), "zeroconf's process-wide event loop"),
    # pyzmq's zmq.utils.garbage.gc: one thread per process that frees the buffers of zero-copy
    # sends (copy=False) once libzmq is done with them; started on first use, never stopped.
    (re.compile(r" GarbageCollectorThread$"), "pyzmq's zero-copy garbage collector"),
    # distributed's offload executor: one process-wide worker thread, created on first use of a
    # Dask client and never stopped (distributed.utils._offload_executor).
    (re.compile(r"^Dask-Offload"), "dask.distributed's process-wide offload executor"),
    # pexpect/ptyprocess and hypothesis start none; pytest-timeout uses a signal, not a thread.
)
#: File descriptors that outlive a test by design (their readlink target).
ALLOWED_FDS: tuple[tuple[re.Pattern[str], str], ...] = (
    # zmq.Context.instance() is a process-wide singleton: its I/O thread's epoll and its mailbox
    # eventfds are created on first use and stay until the process ends.
    (re.compile(r"^anon_inode:\[?(eventpoll|eventfd)\]?$"), "zmq.Context.instance() internals"),
)

POLL_TIMEOUT = 5.0
"""Seconds a test's threads, sockets and children get to go away after its teardown."""


@dataclass(frozen=True)
class Snapshot:
    """What the process holds at one moment."""

    threads: frozenset[int]
    fds: frozenset[tuple[int, str]]
    connections: frozenset[str]
    children: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            frozenset(t.ident for t in threading.enumerate() if t.ident is not None),
            frozenset(_fds()),
            frozenset(_connections()),
            frozenset(p.pid for p in _live_children()),
        )


def _fds() -> set[tuple[int, str]]:
    result: set[tuple[int, str]] = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            result.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
    return result


def _connections() -> set[str]:
    found: set[str] = set()
    for conn in psutil.Process().net_connections(kind="inet"):
        remote = f" -> {conn.raddr.ip}:{conn.raddr.port}" if conn.raddr else ""
        found.add(f"{conn.laddr.ip}:{conn.laddr.port}{remote} {conn.status}")
    return found


def _live_children() -> list[psutil.Process]:
    alive = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    return alive


def _allowed(text: str, rules: tuple[tuple[re.Pattern[str], str], ...]) -> bool:
    return any(pattern.search(text) for pattern, _ in rules)


def _leaks(before: Snapshot, own: bool) -> list[str]:
    found: list[str] = []
    for thread in threading.enumerate() if own else ():
        if thread.ident in before.threads or not thread.is_alive():
            continue
        target = getattr(thread, "_target", None)
        runs = getattr(target, "__qualname__", type(thread).__qualname__)
        if not _allowed(f"{thread.name} {runs}", ALLOWED_THREADS):
            found.append(f"thread {thread.name!r} running {runs} (daemon={thread.daemon})")
    if own:
        for fd, target in sorted(_fds() - before.fds):
            # 0-2 are the standard streams, which pytest's capturing redirects around tests
            if fd > 2 and not _allowed(target, ALLOWED_FDS):
                found.append(f"file descriptor {fd} -> {target}")
        found += [f"connection {conn}" for conn in sorted(_connections() - before.connections)]
    for child in _live_children():
        if child.pid not in before.children:
            with contextlib.suppress(psutil.Error):
                found.append(f"child process {child.pid} {' '.join(child.cmdline())[:120]}")
    return found


def leaks_after(before: Snapshot, timeout: float = POLL_TIMEOUT, *, own: bool = True) -> list[str]:
    """What is still there, ``timeout`` s at most after the test, that was not there before.

    With ``own=False`` (resources of a shared fixture may change) only child processes are
    compared.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = _leaks(before, own)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)  # polling interval of a poll-with-timeout
