"""Ready-made satellite ``Example``: the smallest complete satellite, used in docs and tests.

It has one parameter (``sample_period``), one custom command (``set_offset``), takes "samples"
in ``do_run`` and updates its status text every second while running.
"""

from __future__ import annotations

from collections.abc import Sequence

from constellation.cli import run_satellite
from constellation.core.config import Configuration
from constellation.core.states import State
from constellation.parameters import Param, read_parameters
from constellation.satellite import CustomCommand, Satellite

__all__ = ["Example", "main"]


class Example(Satellite):
    """A satellite that counts samples at a configurable period."""

    custom_commands = (
        CustomCommand(
            "set_offset",
            "Add an offset to every sample value; returns the new offset.",
            params=(("offset", float),),
            allowed_states=frozenset({State.INIT, State.ORBIT, State.RUN}),
        ),
    )

    parameters = (
        Param(
            "sample_period", float, 1.0, "time between two samples", unit="s", min=0.001, max=60.0
        ),
    )

    sample_period = 1.0
    offset = 0.0
    samples = 0

    def do_initializing(self, config: Configuration) -> str:
        self.sample_period = read_parameters(self.parameters, config)["sample_period"]
        return f"Initialized with sample_period={self.sample_period:g} s"

    def do_starting(self, run_id: str) -> str:
        self.samples = 0
        return f"Run {run_id} starting"

    def do_run(self, run_id: str) -> str:
        status_timer = self.every(1.0, self._report, states=frozenset({State.RUN}))
        try:
            while not self.wait_for_stop(self.sample_period):
                self.samples += 1
        finally:
            status_timer.cancel()
        return f"Run {run_id}: {self.samples} samples"

    def do_stopping(self) -> str:
        return f"Run {self.run_id} stopped after {self.samples} samples"

    def set_offset(self, offset: float) -> float:
        self.offset = offset
        self.log.info("offset set to %g", offset)
        return self.offset

    def _report(self) -> None:
        self.set_status(f"Run {self.run_id}: {self.samples} samples")


def main(argv: Sequence[str] | None = None) -> int:
    return run_satellite(Example, argv)


if __name__ == "__main__":
    raise SystemExit(main())
