"""A port option naming a taken port: one error line naming the option, exit 2, nothing left.

The launcher runs in this process (``run_satellite``), so the autouse leak check sees any thread
or socket the failed start would leave behind; one case runs the real console script to show
that no traceback reaches the user.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from constellation import cli
from constellation.errors import BindError
from satellites.random_transmitter import RandomTransmitter
from tests.helpers import LOOPBACK, console_script, unique_group

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 held by a listening TCP socket for the test's duration."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Take the console handler ``run_satellite`` adds to the root logger away again."""
    before = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)


@pytest.mark.parametrize("option", ["--cmd-port", "--hb-port", "--mon-port", "--data-port"])
def test_taken_port_is_one_error_line_and_exit_2(
    option: str, taken_port: int, capsys: pytest.CaptureFixture[str], root_handlers: None
) -> None:
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    argv = ["-g", unique_group(), "-n", "w2", "-i", LOOPBACK, "--name-check", "0"]
    code = cli.run_satellite(RandomTransmitter, [*argv, option, str(taken_port)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"SatelliteRandomTransmitter: error: {option} {taken_port}: address already in use\n"
    )
    # The launcher's signal handlers point at the failed satellite: gone again.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_console_script_prints_no_traceback(taken_port: int) -> None:
    cmd = [console_script("SatelliteH5DataWriter"), "-g", unique_group(), "-n", "w2"]
    cmd += ["-i", LOOPBACK, "--name-check", "0", "--cmd-port", str(taken_port)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr == (
        f"SatelliteH5DataWriter: error: --cmd-port {taken_port}: address already in use\n"
    )


def test_start_raises_bind_error_and_closes_what_it_opened(taken_port: int) -> None:
    sat = RandomTransmitter("w3", unique_group(), interfaces=[LOOPBACK], data_port=taken_port)
    with pytest.raises(BindError) as caught:
        sat.start()  # the data socket binds last, after the loop and the other sockets
    assert (caught.value.service, caught.value.reason) == ("data", "address already in use")
    # Closed again: no thread of its own left (the leak check also looks for its sockets).
    assert [t.name for t in threading.enumerate() if sat.canonical_name in t.name] == []
