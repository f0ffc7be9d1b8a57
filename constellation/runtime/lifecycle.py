"""Runtime: the hook interface of a satellite — what user code and data roles override.

:class:`Lifecycle` declares the user hooks (``do_*``, all run in the hook worker except where
noted) and the framework extension points of the data roles (``_framework_*``, used by
``TransmitterSatellite`` and ``ReceiverSatellite``), each with the moment it is called. It holds
no state; ``Satellite`` derives from it and calls the hooks from its transition jobs.
"""

from __future__ import annotations

from constellation.core.config import Configuration
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State

__all__ = ["Lifecycle"]


class Lifecycle:
    """User hooks and data-role extension points, with their default behaviour."""

    #: The state an interrupt came from (ORBIT or RUN), set before ``do_interrupting``.
    interrupted_from: State | None

    def wait_for_stop(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` s for a stop request (implemented by ``Satellite``)."""
        raise NotImplementedError

    # --- user hooks (hook worker) --------------------------------------------------------------
    def do_initializing(self, config: Configuration) -> str | None:
        """Read and check the configuration; connect to hardware."""
        return None

    def do_launching(self) -> str | None:
        """Prepare for data taking (e.g. ramp up voltages)."""
        return None

    def do_landing(self) -> str | None:
        """Undo ``do_launching``."""
        return None

    def do_reconfigure(self, partial: Configuration) -> str | None:
        """Apply a partial configuration in ORBIT (override to support ``reconfigure``)."""
        raise NotImplementedError

    def do_starting(self, run_id: str) -> str | None:
        """Prepare run ``run_id``."""
        return None

    def do_run(self, run_id: str) -> str | None:
        """Take data until ``stop_requested()`` is true (default: just wait)."""
        self.wait_for_stop(None)
        return None

    def do_stopping(self) -> str | None:
        """Finish the current run."""
        return None

    def do_interrupting(self) -> str | None:
        """Bring the satellite to SAFE: by default stop if running, then land."""
        if self.interrupted_from is State.RUN:
            self.do_stopping()
        self.do_landing()
        return None

    def do_failure(self) -> None:
        """Called on entering ERROR (in the failing thread, never the loop thread)."""

    # --- data-role extension points (framework code) ------------------------------------------
    def _framework_initialize(self, config: Configuration) -> None:
        """Read framework sections of the configuration (before ``do_initializing``)."""

    def _framework_launch(self) -> None:
        """Framework work before ``do_launching``."""

    def _framework_land(self) -> None:
        """Framework work after ``do_landing``."""

    def _framework_start(self, run_id: str) -> None:
        """Framework work after ``do_starting``, before entering RUN (e.g. send the BOR)."""

    def _framework_interrupting(self) -> None:
        """Called by the interrupting thread once ``interrupting`` began (e.g. unblock sends)."""

    def _framework_stop(self) -> None:
        """Framework work after ``do_run`` returned, before ``do_stopping``."""

    def _framework_stopped(self, condition: RunCondition) -> None:
        """Framework work after ``do_stopping`` (e.g. send the EOR)."""

    def _framework_failure(self, previous: State) -> None:
        """Framework clean-up on entering ERROR (in the failing thread)."""
