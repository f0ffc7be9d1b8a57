"""Runtime: the transition jobs — framework work and user hooks, in their documented order.

Each job runs in the hook worker between ``begin`` and ``complete`` of its transition (see
``runtime.transitions``) and returns the hook's status text. The order per transition, with
the calls of the data role (``roles.base.DataRole``)::

    initialize  apply framework keys, role.configure, do_initializing, report unused keys
    launch      role.launch, do_launching
    land        do_landing, role.land
    reconfigure apply the partial map, do_reconfigure, report unused keys
    start       reset run state, do_starting, role.begin_run (BOR)
    (RUN)       do_run until it returns
    stop        role.end_run (drain), do_stopping, role.finish_run (EOR)
    interrupt   [role.end_run], do_interrupting, [role.finish_run], role.land

The jobs see the satellite through :class:`JobHost` only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from constellation.core.config import (
    Configuration,
    FrameworkConfig,
    normalize_framework_keys,
    resolve_env,
)
from constellation.core.fsm import Command
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import SendingStoppedError
from constellation.runtime.transitions import HookCaller, failure_reason, original_error

if TYPE_CHECKING:
    from constellation.roles.base import DataRole

__all__ = ["JobHost", "TransitionJobs"]


class JobHost(Protocol):
    """What the jobs read and write: run-related attributes and the data role (user hooks go
    through the caller)."""

    canonical_name: str
    log: logging.Logger
    config: Configuration
    run_id: str
    run_condition: RunCondition
    interrupted_from: State | None
    bor_tags: dict[str, Any]
    eor_tags: dict[str, Any]
    data_role: DataRole

    @property
    def state(self) -> State: ...

    def apply_framework(self, framework: FrameworkConfig) -> None:
        """Take role, autonomy and heartbeat settings of a new configuration."""

    def publish_metric(self, name: str, value: Any) -> None: ...
    def set_status(self, text: str) -> None: ...
    def fail(self, reason: str, error: BaseException | None = None) -> None: ...


class TransitionJobs:
    """The job of every transition command for ``host``; hooks are called through ``hook``."""

    def __init__(self, host: JobHost, hook: HookCaller, stop_event: threading.Event) -> None:
        self._host = host
        self._hook = hook
        self._stop = stop_event

    def job(self, command: Command, argument: Any = None) -> Callable[[], str | None]:
        """The job of transition ``command`` (``argument``: its payload)."""
        table: dict[Command, Callable[[], str | None]] = {
            Command.initialize: lambda: self.initialize(argument),
            Command.launch: self.launch,
            Command.land: self.land,
            Command.start: lambda: self.start(argument),
            Command.stop: self.stop,
            Command.reconfigure: lambda: self.reconfigure(argument),
            Command.interrupt: self.interrupt,
        }
        return table[command]

    def initialize(self, raw: dict[str, Any]) -> str | None:
        host = self._host
        data = resolve_env(normalize_framework_keys(raw), os.environ)
        config = Configuration(data)
        framework = FrameworkConfig.from_config(
            config, own_name=host.canonical_name, data=host.data_role.handles_data
        )
        host.apply_framework(framework)
        host.data_role.configure(framework.data)
        status = self._hook("do_initializing", config)
        host.config = config
        return _with_unused(status, config, "Initialized", host.log)

    def launch(self) -> str | None:
        self._host.data_role.launch()
        return self._hook("do_launching")

    def land(self) -> str | None:
        status = self._hook("do_landing")
        self._host.data_role.land()
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
        host.data_role.begin_run(run_id, host.bor_tags, host.config.effective())
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
        host.data_role.end_run(interrupted=False)
        status = self._hook("do_stopping")
        host.data_role.finish_run(host.run_condition, host.eor_tags)
        return status

    def interrupt(self) -> str | None:
        host = self._host
        was_running = host.interrupted_from is State.RUN
        if was_running:
            host.run_condition |= RunCondition.INTERRUPTED
            host.data_role.end_run(interrupted=True)
        status = self._hook("do_interrupting")
        if was_running:
            host.data_role.finish_run(host.run_condition, host.eor_tags)
        host.data_role.land()
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
