"""I/O layer: rate-limited warnings for input that may arrive in floods (garbage, bad peers)."""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedWarning"]


class RateLimitedWarning:
    """Log the first occurrence at once, later ones at most every ``period`` s with a count."""

    def __init__(self, logger: logging.Logger, period: float = 10.0) -> None:
        self._log = logger
        self._period = period
        self._last = -float("inf")
        self._suppressed = 0
        self.total = 0

    def __call__(self, message: str, *args: object) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self._last < self._period:
            self._suppressed += 1
            return
        suffix = f" ({self._suppressed} similar messages suppressed)" if self._suppressed else ""
        self._log.warning(message + suffix, *args)
        self._last = now
        self._suppressed = 0
