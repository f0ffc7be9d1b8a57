"""The ``MissionControl`` console script: bad arguments, and a real server's stream and stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request

from tests.helpers import LOOPBACK, console_script, unique_group, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def test_missing_configuration_file_is_a_clear_error(tmp_path) -> None:
    res = subprocess.run(
        [console_script("MissionControl"), "-g", "g", "-c", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2
    assert f"error: configuration file {tmp_path / 'nope.toml'} not found" in res.stderr


def test_server_streams_to_a_raw_client_and_stops_with_it_open(tmp_path) -> None:
    port = free_port()
    cmd = [console_script("MissionControl"), "-g", unique_group("web"), "-i", LOOPBACK]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"on http://127.0.0.1:{port}/" in proc.stdout.readline()

        def info() -> object:
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/info", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                return None

        assert wait_for(info, 20, 0.1, "server up") == {
            "token_required": False,
            "runs": "runs: not available (start MissionControl with --data-dir DIR)",
            "live": info()["live"],  # type: ignore[index]
        }
        # A client that reads the first event and then never again (a stuck browser).
        sock = socket.create_connection((LOOPBACK, port), timeout=10)
        sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        head = b""
        while b"event: snapshot" not in head:
            head += sock.recv(4096)
        assert b"text/event-stream" in head
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0  # the open stream does not keep it alive
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
