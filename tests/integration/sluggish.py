"""A satellite with slow user code, run as a real process by test_threading_contract.py.

``slow(seconds)`` blocks in its handler and returns ``seconds``; ``do_run`` never returns and
ignores ``stop_requested()`` (a hung hardware call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from constellation.cli import run_satellite
from constellation.satellite import CustomCommand, Satellite

__all__ = ["Sluggish", "main"]


class Sluggish(Satellite):
    custom_commands = (
        CustomCommand("slow", "Block for the given seconds; returns them.", (("seconds", float),)),
    )

    def slow(self, seconds: float) -> float:
        time.sleep(seconds)  # the blocking work under test
        return seconds

    def do_run(self, run_id: str) -> None:
        threading.Event().wait()  # never returns, whatever stop_requested() says


def main(argv: Sequence[str] | None = None) -> int:
    return run_satellite(Sluggish, argv)


if __name__ == "__main__":
    raise SystemExit(main())
