"""``shutdown`` asks to close only after its reply was sent: explicit ordering, no timer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from constellation.runtime.standard_commands import standard_commands


class _View:
    supports_reconfigure = False
    log = logging.getLogger("test.shutdown")

    def __init__(self) -> None:
        self.deferred: list[Callable[[], Any]] = []
        self.shutdown_requested = 0

    def after_reply(self, fn: Callable[[], Any]) -> None:
        self.deferred.append(fn)

    def request_shutdown(self) -> None:
        self.shutdown_requested += 1


def test_shutdown_is_requested_after_the_reply_not_by_a_timer() -> None:
    view = _View()
    spec = {spec.name: spec for spec in standard_commands(view)}["shutdown"]  # type: ignore[arg-type]
    threads_before = threading.active_count()
    result = spec.handler()
    assert result.text == "Shutting down"
    assert view.shutdown_requested == 0, "shutdown requested before the reply went out"
    assert threading.active_count() == threads_before, "a timer thread orders the shutdown"
    for fn in view.deferred:  # what the command server does once the reply is sent
        fn()
    assert view.shutdown_requested == 1
