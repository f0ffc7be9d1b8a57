"""Assembly layer: metric registration, scheduling and publishing over CMDP1 (STAT/<NAME>).

A metric has a name (UPPER_SNAKE), a unit and a description. Values are scalars. Polled metrics
are sampled every ``interval`` seconds in the allowed states and published only when somebody
subscribed; a poll function that raises is logged (rate-limited), never fatal. Rates and averages
are computed by listeners, not put on the wire.

The registry knows its collaborators only: the sender name, a state getter, and — once started —
the event loop (timers), the publisher and a task runner. The loop's timer only checks the
state and the subscriptions; the poll function itself (user code) runs through the task runner,
off the loop thread, and a sample still running when the next one is due is skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from constellation.core.states import State
from constellation.errors import EncodeError, MetricDefinitionError
from constellation.net.loop import EventLoop, TimerHandle
from constellation.net.monitoring import MonitoringPublisher
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cmdp1 import CMDP1Metric

#: Runs a call off the loop thread (the satellite's task worker).
TaskRunner = Callable[[Callable[[], None]], None]

__all__ = ["DEFAULT_METRIC_STATES", "Metric", "MetricRegistry", "TaskRunner"]

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

#: States in which scheduled metrics are sampled by default.
DEFAULT_METRIC_STATES = frozenset(State) - {
    State.NEW,
    State.initializing,
    State.reconfiguring,
    State.ERROR,
    State.DEAD,
}


@dataclass
class Metric:
    """A registered metric."""

    name: str
    unit: str
    description: str
    poll: Callable[[], Any] | None = None
    interval: float = 10.0
    states: frozenset[State] = DEFAULT_METRIC_STATES
    timer: TimerHandle | None = None
    sampling: bool = False


class MetricRegistry:
    """The metrics of one satellite (``sender``: its canonical name)."""

    def __init__(
        self,
        sender: str,
        state: Callable[[], State],
        log_name: str,
        interval_scale: float = 1.0,
    ) -> None:
        """``interval_scale`` multiplies every interval (the launcher passes
        ``ProcessSettings.metric_scale``)."""
        self._sender = sender
        self._scale = interval_scale
        self._state = state
        self._metrics: dict[str, Metric] = {}
        self._log = logging.getLogger(f"{log_name}.monitoring")
        self._failures: dict[str, RateLimitedWarning] = {}
        self._running = False
        self._loop: EventLoop | None = None
        self._publisher: MonitoringPublisher | None = None
        self._run_task: TaskRunner = _run_inline
        self.register("STATE", "", "Current state name")
        self.register("RUN_ID", "", "Identifier of the current run")
        self.register("CPU_LOAD_AVG", "%", "CPU load of the host", _cpu_load, 10.0)
        self.register("MEM_AVAIL", "MiB", "Available memory of the host", _mem_avail, 10.0)

    @property
    def interval_scale(self) -> float:
        """The factor applied to every metric interval."""
        return self._scale

    def register(
        self,
        name: str,
        unit: str,
        description: str,
        poll: Callable[[], Any] | None = None,
        interval: float = 10.0,
        states: frozenset[State] = DEFAULT_METRIC_STATES,
    ) -> Metric:
        """Register a metric; with ``poll`` it is sampled every ``interval`` s.

        Raises :class:`~constellation.errors.MetricDefinitionError` (a ``ValueError``) naming
        the metric for a bad name, unit, description, poll function or interval.
        """
        name = name.upper()
        if not _NAME.match(name):
            raise MetricDefinitionError(f"metric name '{name}' must be UPPER_SNAKE")
        if not isinstance(unit, str) or not isinstance(description, str):
            raise MetricDefinitionError(f"metric {name}: unit and description must be str")
        if poll is not None and not callable(poll):
            raise MetricDefinitionError(f"metric {name}: poll must be callable")
        if not interval > 0:
            raise MetricDefinitionError(
                f"metric {name}: interval must be positive, not {interval!r}"
            )
        if name in self._metrics:
            self._cancel(self._metrics[name])
        metric = Metric(name, unit, description, poll, interval, states)
        self._metrics[name] = metric
        if self._running:
            self._schedule(metric)
            if self._publisher is not None:
                self._publisher.notify("STAT")
        return metric

    def topics(self) -> dict[str, str]:
        """Metric name -> description (the payload of the ``STAT?`` notification)."""
        return {m.name: m.description for m in list(self._metrics.values())}

    def publish_now(self, name: str, value: Any, unit: str | None = None) -> None:
        """Publish ``value`` for ``name`` now if anybody listens (``None`` is skipped).

        numpy scalars are sent as plain numbers; a value that cannot travel (a list, bytes...)
        is reported as a warning and dropped, never raised.
        """
        publisher = self._publisher
        if value is None or publisher is None:
            return
        name = name.upper()
        if not publisher.wants(f"STAT/{name}"):
            return
        metric = self._metrics.get(name)
        unit = unit if unit is not None else (metric.unit if metric else "")
        if hasattr(value, "item") and getattr(value, "shape", None) == ():
            value = value.item()  # numpy scalar or 0-d array -> Python scalar
        try:
            publisher.publish(CMDP1Metric(self._sender, name, value, unit))
        except EncodeError as exc:
            self._warn(name, "metric %s not sent: %s", name, exc)

    def start(
        self, loop: EventLoop, publisher: MonitoringPublisher, run_task: TaskRunner | None = None
    ) -> None:
        """Begin sampling: timers in ``loop``, polls through ``run_task`` (default: inline)."""
        self._loop = loop
        self._publisher = publisher
        self._run_task = run_task or _run_inline
        self._running = True
        for metric in list(self._metrics.values()):
            self._schedule(metric)

    def stop(self) -> None:
        self._running = False
        for metric in list(self._metrics.values()):
            self._cancel(metric)

    def _schedule(self, metric: Metric) -> None:
        loop = self._loop
        if metric.poll is None or loop is None:
            return
        interval = max(0.01, metric.interval * self._scale)
        metric.timer = loop.call_every(interval, lambda: self._due(metric), first=interval)

    def _due(self, metric: Metric) -> None:
        """Loop thread: hand the sample to the task runner if somebody wants it."""
        if metric.sampling or self._state() not in metric.states or metric.poll is None:
            return
        publisher = self._publisher
        if publisher is None or not publisher.wants(f"STAT/{metric.name}"):
            return
        metric.sampling = True
        try:
            self._run_task(lambda: self._sample(metric))
        except Exception:
            metric.sampling = False
            raise

    @staticmethod
    def _cancel(metric: Metric) -> None:
        if metric.timer is not None:
            metric.timer.cancel()
            metric.timer = None

    def _sample(self, metric: Metric) -> None:
        try:
            if metric.poll is None:
                return
            try:
                value = metric.poll()
            except Exception as exc:
                self._warn(
                    metric.name,
                    "metric %s could not be sampled: %s: %s",
                    metric.name,
                    type(exc).__name__,
                    exc,
                )
                return
            self.publish_now(metric.name, value)
        finally:
            metric.sampling = False

    def _warn(self, name: str, message: str, *args: object) -> None:
        """A warning rate-limited per metric, so one broken metric does not hide another."""
        warning = self._failures.get(name)
        if warning is None:
            warning = self._failures[name] = RateLimitedWarning(self._log)
        warning(message, *args)


def _run_inline(call: Callable[[], None]) -> None:
    call()


def _cpu_load() -> float:
    return float(psutil.cpu_percent(interval=None))


def _mem_avail() -> float:
    return round(float(psutil.virtual_memory().available) / 2**20, 1)
