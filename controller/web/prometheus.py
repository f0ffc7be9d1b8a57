"""MissionControl web: ``GET /metrics`` for Prometheus, read from the page's model.

A custom collector (prometheus_client) exports, with a ``satellite="Type.Name"`` label:
``constellation_satellite_state`` (state code; a ``state`` label carries the name),
``constellation_heartbeat_lives`` and every numeric metric as ``constellation_<metric>`` (the
latest value; a metric whose sender stopped announcing it or disconnected is left out).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from constellation.core.states import State
from controller.web.backend import Backend

__all__ = ["ModelCollector", "metric_name", "registry_for"]


def metric_name(metric: str) -> str:
    """``TX_RECORDS`` -> ``constellation_tx_records`` (invalid characters become ``_``)."""
    return "constellation_" + re.sub(r"[^a-zA-Z0-9_]", "_", metric).lower()


def _state_code(state: str) -> float:
    return float(State[state].value) if state in State.__members__ else -1.0


class ModelCollector(Collector):
    """Reads a :class:`Backend`'s model at each scrape."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Any]:
        with self.backend.lock:
            rows = [(r.name, r.state, r.lives) for r in self.backend.model.sats.values()]
            latest = [
                (s, m, ser.points[-1][1])
                for (s, m), ser in self.backend.model.series.items()
                if ser.points and not ser.stale
            ]
        state = GaugeMetricFamily(
            "constellation_satellite_state",
            "State code of the satellite (DEAD = -1 if unknown)",
            labels=["satellite", "state"],
        )
        lives = GaugeMetricFamily(
            "constellation_heartbeat_lives", "Heartbeat lives left", labels=["satellite"]
        )
        for name, st, left in rows:
            state.add_metric([name, st], _state_code(st))
            lives.add_metric([name], float(left))
        yield state
        yield lives
        families: dict[str, GaugeMetricFamily] = {}
        for sender, metric, value in latest:
            fam_name = metric_name(metric)
            if fam_name not in families:
                families[fam_name] = GaugeMetricFamily(
                    fam_name, f"Satellite metric {metric}", labels=["satellite"]
                )
            families[fam_name].add_metric([sender], value)
        yield from families.values()


def registry_for(backend: Backend) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ModelCollector(backend))
    return registry
