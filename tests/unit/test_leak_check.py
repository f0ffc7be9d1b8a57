"""The leak check of tests/conftest.py sees what a test leaves behind, and nothing else."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

from tests.leaks import Snapshot, leaks_after


def test_nothing_left_means_no_leak() -> None:
    assert leaks_after(Snapshot.take(), timeout=0.5) == []


def test_a_running_thread_is_a_leak_until_it_ends() -> None:
    before = Snapshot.take()
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="left-behind", daemon=True)
    thread.start()
    try:
        found = leaks_after(before, timeout=0.2)
        assert len(found) == 1 and "'left-behind'" in found[0], found
        assert leaks_after(before, timeout=0.2, own=False) == []  # shared fixtures: children only
    finally:
        release.set()
        thread.join(5)
    assert leaks_after(before, timeout=2) == []


def test_an_open_socket_is_a_leak() -> None:
    before = Snapshot.take()
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        found = leaks_after(before, timeout=0.2)
        assert any(f.startswith("file descriptor") and "socket:" in f for f in found), found
        assert any(f.startswith("connection 127.0.0.1:") and str(port) in f for f in found)
    finally:
        server.close()
    assert leaks_after(before, timeout=2) == []


def test_a_child_process_is_a_leak_even_for_shared_fixtures() -> None:
    before = Snapshot.take()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        found = leaks_after(before, timeout=0.2, own=False)
        assert found == [found[0]] and found[0].startswith(f"child process {child.pid}"), found
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert leaks_after(before, timeout=2) == []
