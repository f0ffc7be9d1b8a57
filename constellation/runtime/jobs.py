"""Runtime: the transition jobs — framework work and user hooks, in their documented order.

Each job runs in the hook worker between ``begin`` and ``complete`` of its transition (see
``runtime.transitions``) and returns the hook's status text. The order per transition::

    initialize  apply framework keys, _framework_initialize, do_initializing, report unused keys
    launch      _framework_launch, do_launching
    land        do_landing, _framework_land
    reconfigure apply the partial map, do_reconfigure, report unused keys
    start       reset run state, do_starting, _framework_start (BOR)
    (RUN)       do_run until it returns
    stop        _framework_stop (drain), do_stopping, _framework_stopped (EOR)
    interrupt   [_framework_stop], do_interrupting, [_framework_stopped], _framework_land

The jobs see the satellite through :class:`JobHost` only.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Protocol

from constellation.core.config import (
    Configuration,
    FrameworkConfig,
    normalize_framework_keys,
    resolve_env,
)
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import SendingStoppedError
from constellation.runtime.transitions import HookCaller, failure_reason, original_error

__all__ = ["JobHost", "TransitionJobs"]


class JobHost(Protocol):
    """What the jobs read and write: run-related attributes and the data-role points of
    :class:`~constellation.runtime.lifecycle.Lifecycle` (user hooks go through the caller)."""

    canonical_name: str
    log: logging.Logger
    config: Configuration
    run_id: str
    run_condition: RunCondition
    interrupted_from: State | None

    @property
    def handles_data(self) -> bool: ...
    @property
    def state(self) -> State: ...

    def apply_framework(self, framework: FrameworkConfig) -> None:
        """Take role, autonomy and heartbeat settings of a new configuration."""

    def publish_metric(self, name: str, value: Any) -> None: ...
    def set_status(self, text: str) -> None: ...
    def fail(self, reason: str, error: BaseException | None = None) -> None: ...
    def _framework_initialize(self, config: Configuration) -> None: ...
    def _framework_launch(self) -> None: ...
    def _framework_land(self) -> None: ...
    def _framework_start(self, run_id: str) -> None: ...
    def _framework_stop(self) -> None: ...
    def _framework_stopped(self, condition: RunCondition) -> None: ...


class TransitionJobs:
    """The job of every transition command for ``host``; hooks are called through ``hook``."""

    def __init__(self, host: JobHost, hook: HookCaller, stop_event: threading.Event) -> None:
        self._host = host
        self._hook = hook
        self._stop = stop_event

    def initialize(self, raw: dict[str, Any]) -> str | None:
        host = self._host
        data = resolve_env(normalize_framework_keys(raw), os.environ)
        config = Configuration(data)
        framework = FrameworkConfig.from_config(
            config, own_name=host.canonical_name, data=host.handles_data
        )
        host.apply_framework(framework)
        host._framework_initialize(config)
        status = self._hook("do_initializing", config)
        host.config = config
        return _with_unused(status, config, "Initialized", host.log)

    def launch(self) -> str | None:
        self._host._framework_launch()
        return self._hook("do_launching")

    def land(self) -> str | None:
        status = self._hook("do_landing")
        self._host._framework_land()
        return status

    def reconfigure(self, partial: dict[str, Any]) -> str | None:
        data = resolve_env(normalize_framework_keys(partial), os.environ)
        self._host.config.apply_partial(data)
        partial_config = Configuration(data)
        status = self._hook("do_reconfigure", partial_config)
        return _with_unused(status, partial_config, "Reconfigured", self._host.log)

    def start(self, run_id: str) -> str | None:
        host = self._host
        self._stop.clear()
        host.run_id = run_id
        host.run_condition = RunCondition.GOOD
        host.publish_metric("RUN_ID", run_id)
        status = self._hook("do_starting", run_id)
        host._framework_start(run_id)
        return status

    def run(self) -> None:
        """``do_run`` until it returns (after ``start`` completed); a failure goes to ERROR."""
        host = self._host
        try:
            status = self._hook("do_run", host.run_id)
        except Exception as exc:
            if isinstance(original_error(exc), SendingStoppedError):
                return  # an interrupt stopped the data sending while do_run waited for room
            if host.state is not State.ERROR:  # else a consequence of the failure: keep its status
                host.fail(failure_reason(exc), exc)
            return
        if status and host.state is State.RUN:
            host.set_status(status)  # after stop, interrupt or failure their own status wins

    def stop(self) -> str | None:
        host = self._host
        host._framework_stop()
        status = self._hook("do_stopping")
        host._framework_stopped(host.run_condition)
        return status

    def interrupt(self) -> str | None:
        host = self._host
        was_running = host.interrupted_from is State.RUN
        if was_running:
            host.run_condition |= RunCondition.INTERRUPTED
            host._framework_stop()
        status = self._hook("do_interrupting")
        if was_running:
            host._framework_stopped(host.run_condition)
        host._framework_land()
        return status


def _with_unused(
    status: str | None, config: Configuration, default: str, log: logging.Logger
) -> str | None:
    """``status`` with ``(N unused keys: a, b)`` appended when ``config`` has keys nobody read."""
    unused = config.unused_keys()
    if not unused:
        return status
    log.warning("unused configuration keys: %s", ", ".join(unused))
    return f"{status or default} ({len(unused)} unused keys: {', '.join(unused)})"
