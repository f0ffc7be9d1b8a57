"""controller.group: a background fetch that raises is logged, not lost in its future."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from controller.group import _log_failure


def test_failed_background_fetch_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    future: Future[None] = Future()
    future.set_exception(RuntimeError("socket closed under us"))
    with caplog.at_level("ERROR", logger="constellation.controller.group"):
        _log_failure(future)
    (record,) = caplog.records
    assert "run-id fetch failed" in record.getMessage()
    assert record.exc_info is not None and "socket closed under us" in str(record.exc_info[1])


def test_successful_or_cancelled_fetch_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    done: Future[None] = Future()
    done.set_result(None)
    cancelled: Future[None] = Future()
    cancelled.cancel()
    with caplog.at_level("DEBUG", logger="constellation.controller.group"):
        _log_failure(done)
        _log_failure(cancelled)
    assert caplog.records == []
