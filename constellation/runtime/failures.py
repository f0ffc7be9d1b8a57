"""Runtime: going to ERROR — status, stop request, log, data-role clean-up, ``do_failure``.

:meth:`FailureHandler.fail` may be called from any thread. ``do_failure`` (user code) runs in
the calling thread, except in the event-loop thread: then it is handed to the task worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from constellation.core.fsm import SatelliteFSM
from constellation.core.states import State
from constellation.errors import UsageError
from constellation.runtime.transitions import is_expected_failure, original_error
from constellation.runtime.workers import ActiveCalls, Worker

__all__ = ["FailureHandler"]


class FailureHandler:
    """Fails one satellite; ``clean_up(previous)`` is framework code, ``do_failure`` user code."""

    def __init__(
        self,
        fsm: SatelliteFSM,
        stop_event: threading.Event,
        log: logging.Logger,
        *,
        set_status: Callable[[str], None],
        clean_up: Callable[[State], None],
        do_failure: Callable[[], None],
        in_loop_thread: Callable[[], bool],
        tasks: Worker,
        active: ActiveCalls,
    ) -> None:
        self._fsm = fsm
        self._stop = stop_event
        self._log = log
        self._set_status = set_status
        self._clean_up = clean_up
        self._do_failure = do_failure
        self._in_loop_thread = in_loop_thread
        self._tasks = tasks
        self._active = active

    def fail(self, reason: str, error: BaseException | None = None) -> None:
        """Go to ERROR with ``reason`` as status (a traceback is logged for unexpected errors)."""
        previous = self._fsm.state
        self._set_status(reason)
        self._stop.set()
        self._fsm.fail()
        if error is not None and not is_expected_failure(error):
            self._log.critical("%s", reason, exc_info=original_error(error))
        else:
            self._log.critical("%s", reason)
        try:
            self._clean_up(previous)
        except Exception:
            self._log.exception("framework clean-up after failure failed")
        if not self._in_loop_thread():
            self._call_do_failure()
            return
        try:
            self._tasks.submit(self._call_do_failure)
        except UsageError:
            self._log.warning("do_failure not called: the satellite is closed")

    def _call_do_failure(self) -> None:
        try:
            with self._active.running("do_failure"):
                self._do_failure()
        except Exception:
            self._log.exception("do_failure raised")
