"""Assembly layer: metric registration, scheduling and publishing over CMDP1 (STAT/<NAME>).

A metric has a name (UPPER_SNAKE), a unit and a description. Values are scalars. Polled metrics
are sampled every ``interval`` seconds in the allowed states and published only when somebody
subscribed; a poll function that raises is logged (rate-limited), never fatal. Rates and averages
are computed by listeners, not put on the wire.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from constellation.core.states import State
from constellation.errors import EncodeError
from constellation.net.loop import TimerHandle
from constellation.net.ratelimit import RateLimitedWarning
from constellation.protocol.cmdp1 import CMDP1Metric

if TYPE_CHECKING:
    from constellation.satellite import Satellite

__all__ = ["DEFAULT_METRIC_STATES", "Metric", "MetricRegistry"]

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


def _interval_scale() -> float:
    return float(os.environ.get("CONSTELLATION_METRIC_SCALE", "1.0"))


class MetricRegistry:
    """The metrics of one satellite."""

    def __init__(self, satellite: Satellite) -> None:
        self._sat = satellite
        self._metrics: dict[str, Metric] = {}
        self._log = logging.getLogger(f"{satellite.log.name}.monitoring")
        self._failures: dict[str, RateLimitedWarning] = {}
        self._running = False
        self.register("STATE", "", "Current state name")
        self.register("RUN_ID", "", "Identifier of the current run")
        self.register("CPU_LOAD_AVG", "%", "CPU load of the host", _cpu_load, 10.0)
        self.register("MEM_AVAIL", "MiB", "Available memory of the host", _mem_avail, 10.0)

    def register(
        self,
        name: str,
        unit: str,
        description: str,
        poll: Callable[[], Any] | None = None,
        interval: float = 10.0,
        states: frozenset[State] = DEFAULT_METRIC_STATES,
    ) -> Metric:
        """Register a metric; with ``poll`` it is sampled every ``interval`` s."""
        name = name.upper()
        if not _NAME.match(name):
            raise ValueError(f"metric name '{name}' must be UPPER_SNAKE")
        if not isinstance(unit, str) or not isinstance(description, str):
            raise TypeError(f"metric {name}: unit and description must be str")
        if poll is not None and not callable(poll):
            raise TypeError(f"metric {name}: poll must be callable")
        if not interval > 0:
            raise ValueError(f"metric {name}: interval must be positive, not {interval!r}")
        if name in self._metrics:
            self._cancel(self._metrics[name])
        metric = Metric(name, unit, description, poll, interval, states)
        self._metrics[name] = metric
        if self._running:
            self._schedule(metric)
            if self._sat.monitoring is not None:
                self._sat.monitoring.notify("STAT")
        return metric

    def topics(self) -> dict[str, str]:
        """Metric name -> description (the payload of the ``STAT?`` notification)."""
        return {m.name: m.description for m in list(self._metrics.values())}

    def publish_now(self, name: str, value: Any, unit: str | None = None) -> None:
        """Publish ``value`` for ``name`` now if anybody listens (``None`` is skipped).

        numpy scalars are sent as plain numbers; a value that cannot travel (a list, bytes...)
        is reported as a warning and dropped, never raised.
        """
        publisher = self._sat.monitoring
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
            publisher.publish(CMDP1Metric(self._sat.canonical_name, name, value, unit))
        except EncodeError as exc:
            self._warn(name, "metric %s not sent: %s", name, exc)

    def start(self) -> None:
        self._running = True
        for metric in list(self._metrics.values()):
            self._schedule(metric)

    def stop(self) -> None:
        self._running = False
        for metric in list(self._metrics.values()):
            self._cancel(metric)

    def _schedule(self, metric: Metric) -> None:
        loop = self._sat.loop
        if metric.poll is None or loop is None:
            return
        interval = max(0.01, metric.interval * _interval_scale())
        metric.timer = loop.call_every(interval, lambda: self._sample(metric), first=interval)

    @staticmethod
    def _cancel(metric: Metric) -> None:
        if metric.timer is not None:
            metric.timer.cancel()
            metric.timer = None

    def _sample(self, metric: Metric) -> None:
        if self._sat.state not in metric.states or metric.poll is None:
            return
        publisher = self._sat.monitoring
        if publisher is None or not publisher.wants(f"STAT/{metric.name}"):
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

    def _warn(self, name: str, message: str, *args: object) -> None:
        """A warning rate-limited per metric, so one broken metric does not hide another."""
        warning = self._failures.get(name)
        if warning is None:
            warning = self._failures[name] = RateLimitedWarning(self._log)
        warning(message, *args)


def _cpu_load() -> float:
    return float(psutil.cpu_percent(interval=None))


def _mem_avail() -> float:
    return round(float(psutil.virtual_memory().available) / 2**20, 1)
