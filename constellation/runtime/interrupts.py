"""Runtime: interrupting — ORBIT or RUN -> interrupting -> SAFE, from any thread.

:meth:`InterruptHandler.interrupt` begins the transition only from ORBIT or RUN; of interrupts
racing each other the first one begins it (and its reason stays), the others return False.
Once begun, the data role is unblocked (a sender waiting for credit, a receiver waiting for
data) so that the interrupt job does not wait behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from constellation.core.states import State
from constellation.errors import InvalidStateError

__all__ = ["InterruptHandler"]

#: The states an interrupt leaves.
INTERRUPTIBLE = frozenset({State.ORBIT, State.RUN})


class InterruptHandler:
    """Interrupts one satellite; ``begin(state, reason)`` records both and begins the job."""

    def __init__(
        self,
        state: Callable[[], State],
        log: logging.Logger,
        *,
        begin: Callable[[State, str], object],
        unblock: Callable[[], None],
    ) -> None:
        self._state = state
        self._log = log
        self._begin = begin
        self._unblock = unblock
        self._lock = threading.Lock()

    def interrupt(self, reason: str) -> bool:
        """Begin the interrupt with ``reason``; False if not in ORBIT or RUN."""
        with self._lock:
            state = self._state()
            if state not in INTERRUPTIBLE:
                return False
            try:
                self._begin(state, reason)
            except InvalidStateError:
                return False
        try:
            self._unblock()
        except Exception:
            self._log.exception("data role reaction to the interrupt failed")
        self._log.warning("interrupting: %s", reason)
        return True
