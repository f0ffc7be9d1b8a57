"""Runtime: the hook interface of a satellite — what user code overrides.

:class:`Lifecycle` declares the user hooks (``do_*``, all run in the hook worker except where
noted), each with the moment it is called. It holds no state; ``Satellite`` derives from it and
calls the hooks from its transition jobs. Framework data work is not a hook: it is the data role
(``roles.base.DataRole``), a composed object.
"""

from __future__ import annotations

from constellation.core.config import Configuration
from constellation.core.states import State

__all__ = ["Lifecycle"]


class Lifecycle:
    """User hooks, with their default behaviour."""

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

    def on_close(self) -> None:
        """Release what the satellite holds besides its sockets (e.g. an output file); called
        once by ``close()`` in its thread, after user code settled and the data role closed."""
