"""Controller layer: run sequences that step parameters (scans), from Python or a scan file.

A :class:`Scan` holds one or more :class:`Parameter` (a satellite or a whole type, a dotted key
and the values to step through), how to combine them (``zip`` or ``product``), how long each run
lasts (``duration`` seconds and/or an :class:`~controller.runs.Until` metric condition) and the
run identifier prefix. :meth:`Scan.run` brings the group to ORBIT, then per step applies the
values (``reconfigure`` where the satellite offers it, otherwise land → initialize → launch),
starts run ``<prefix>_<n>``, holds it and stops it. ``n`` continues after the highest
``<prefix>_<n>`` the satellites report (``get_run_id``) unless ``first`` is given. A failed step
stops the scan: running satellites are stopped, and :class:`ScanError` reports the steps done and
the final states. :func:`load_scan` reads the same from a TOML or YAML file.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from constellation.core.config import normalize_framework_keys
from constellation.protocol.common import validate_run_id
from controller.conditions import flat_keys, unused_keys_in
from controller.config import ControllerConfig, load_config
from controller.controller import Controller
from controller.group import GroupView
from controller.runs import NEEDS_INITIALIZE, Cancelled, RunControl, RunError, Until
from controller.telemetry import RECORD_METRICS, MetricWatcher

__all__ = [
    "MODES",
    "Parameter",
    "Scan",
    "ScanError",
    "StepResult",
    "Until",
    "load_scan",
    "next_run_number",
]

#: How new values reach a satellite: ``reconfigure`` (in ORBIT), ``reinitialize`` (land,
#: initialize with the values merged into the configuration, launch), or ``auto`` (reconfigure
#: where the satellite offers it).
MODES = ("auto", "reconfigure", "reinitialize")
_COMBINE = ("zip", "product")


@dataclass(frozen=True)
class Parameter:
    """Step ``key`` of ``target`` (``Type.Name``, or ``Type`` for all of a type) over ``values``."""

    target: str
    key: str
    values: tuple[Any, ...]

    def __init__(self, target: str, key: str, values: Iterable[Any]) -> None:
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", tuple(values))
        if not self.values:
            raise ValueError(f"parameter {self.label}: no values to step through")

    @classmethod
    def range(cls, target: str, key: str, start: float, stop: float, step: float) -> Parameter:
        """``start``, ``start + step``, ... up to and including ``stop``."""
        if step == 0 or (stop - start) / step < 0:
            raise ValueError(f"parameter {target}.{key}: step {step} never reaches {stop}")
        count = int(round((stop - start) / step, 9)) + 1
        values = [round(start + i * step, 12) for i in range(count)]
        if all(isinstance(v, int) for v in (start, stop, step)):
            values = [int(v) for v in values]
        return cls(target, key, values)

    @property
    def label(self) -> str:
        return f"{self.target}.{self.key}"

    def targets(self, present: Iterable[str]) -> list[str]:
        """The present satellites this parameter applies to."""
        wanted = self.target.lower()
        return sorted(
            n for n in present if n.lower() == wanted or n.lower().partition(".")[0] == wanted
        )


@dataclass
class StepResult:
    """What happened in one step of a scan."""

    number: int
    run_id: str
    values: dict[str, Any]
    ended: str = ""  # duration | until | cancelled | failed
    seconds: float = 0.0
    records: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def __str__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        outcome = (
            f"FAILED: {self.error}" if self.error else f"{self.ended} after {self.seconds:.1f} s"
        )
        records = ", ".join(f"{k} {v}" for k, v in sorted(self.records.items()))
        return f"{self.run_id}: {values}: {outcome}" + (f" ({records})" if records else "")


class ScanError(RunError):
    """A scan stopped early; ``results`` are its steps so far, ``states`` the final states."""

    def __init__(
        self,
        message: str,
        results: list[StepResult],
        states: Mapping[str, str],
        failures: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, failures)
        self.results = results
        self.states = dict(states)


def next_run_number(controller: Controller, prefix: str) -> int:
    """One more than the highest ``<prefix>_<n>`` any satellite reports as its run id (or 1)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
    replies = controller.command("get_run_id")
    numbers = [
        int(m.group(1))
        for r in replies.values()
        if r.ok and (m := pattern.match(r.verb)) is not None
    ]
    return max(numbers, default=0) + 1


ProgressCallback = Callable[[float, float | None, MetricWatcher | None], None]


@dataclass
class Scan:
    """A parameter scan: see the module documentation."""

    parameters: Sequence[Parameter]
    prefix: str = "scan"
    duration: float | None = None
    until: Until | None = None
    first: int | None = None
    mode: str = "auto"
    combine: str = "zip"
    land: bool = True

    def __post_init__(self) -> None:
        self.parameters = list(self.parameters)
        if not self.parameters:
            raise ValueError("a scan needs at least one parameter")
        if self.duration is None and self.until is None:
            raise ValueError("a scan needs a duration, an until condition, or both")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.combine not in _COMBINE:
            raise ValueError(f"combine must be 'zip' or 'product', not {self.combine!r}")
        validate_run_id(f"{self.prefix}_1")
        lengths = {len(p.values) for p in self.parameters}
        if self.combine == "zip" and len(lengths) > 1:
            raise ValueError(
                "with combine = 'zip' every parameter needs the same number of values "
                f"({', '.join(f'{p.label}: {len(p.values)}' for p in self.parameters)})"
            )

    def steps(self) -> list[dict[Parameter, Any]]:
        """The value of every parameter, step by step."""
        columns = [p.values for p in self.parameters]
        rows = zip(*columns, strict=True) if self.combine == "zip" else itertools.product(*columns)
        return [dict(zip(self.parameters, row, strict=True)) for row in rows]

    def run(
        self,
        controller: Controller,
        config: Any | None = None,
        *,
        timeout: float = 30.0,
        cancel: threading.Event | None = None,
        log: Callable[[str], None] = print,
        progress: ProgressCallback | None = None,
        view: GroupView | None = None,
        watcher: MetricWatcher | None = None,
    ) -> list[StepResult]:
        """Run every step; returns their results or raises :class:`ScanError`.

        ``view`` and ``watcher`` are made (and closed) here unless given; a given ``watcher``
        must follow the ``until`` metric, if any.
        """
        own_view, own_watcher = view is None, watcher is None
        view = view or GroupView(controller)
        base = load_config(config if config is not None else {})
        if watcher is None:
            metrics = RECORD_METRICS + ((self.until.metric,) if self.until else ())
            watcher = MetricWatcher(controller, metrics)
        control = RunControl(controller, view, timeout=timeout, cancel=cancel, log=log)
        results: list[StepResult] = []
        try:
            return self._run(controller, control, base, watcher, results, log, progress)
        except RunError as exc:
            if results and not results[-1].error:
                results[-1].error = str(exc)
                results[-1].ended = "cancelled" if isinstance(exc, Cancelled) else "failed"
            log(f"scan stopped: {exc}")
            states = control.recover(land=False)
            raise ScanError(f"scan stopped: {exc}", results, states, exc.failures) from exc
        finally:
            if own_watcher:
                watcher.close()
            if own_view:
                view.close()

    def _run(
        self,
        controller: Controller,
        control: RunControl,
        base: ControllerConfig,
        watcher: MetricWatcher,
        results: list[StepResult],
        log: Callable[[str], None],
        progress: ProgressCallback | None,
    ) -> list[StepResult]:
        present = control.names
        targets = {p: p.targets(present) for p in self.parameters}
        missing = [p.target for p, names in targets.items() if not names]
        if missing:
            raise RunError("scan targets not present", {t: "not in the group" for t in missing})
        number = self.first if self.first is not None else next_run_number(controller, self.prefix)
        commands = _commands(controller, sorted({n for ns in targets.values() for n in ns}))
        for index, values in enumerate(self.steps()):
            overrides = _overrides(values, targets)
            run_id = f"{self.prefix}_{number + index}"
            result = StepResult(index + 1, run_id, {p.label: v for p, v in values.items()})
            results.append(result)
            log(f"step {index + 1}: {', '.join(f'{k} = {v!r}' for k, v in result.values.items())}")
            if index == 0:
                before = control.wait_settled()
                control.prepare(base.with_overrides(overrides))
                fresh = {n for n, s in before.items() if s in NEEDS_INITIALIZE}
                _check_used(control, {n: o for n, o in overrides.items() if n in fresh})
                self._apply(
                    control, base, {n: o for n, o in overrides.items() if n not in fresh}, commands
                )
            else:
                self._apply(control, base, overrides, commands)
            watcher.reset()
            began = time.monotonic()
            control.start(run_id)
            result.ended = control.hold(self.duration, self.until, watcher, progress)
            control.stop()
            result.seconds = time.monotonic() - began
            result.records = {
                f"{sender} {metric}": sample.value
                for metric in RECORD_METRICS
                for sender, sample in watcher.latest(metric).items()
            }
            log(str(result))
            if result.ended == "cancelled":
                raise Cancelled("cancelled by the operator")
        if self.land:
            control.land()
        return results

    def _apply(
        self,
        control: RunControl,
        base: ControllerConfig,
        overrides: Mapping[str, dict[str, Any]],
        commands: Mapping[str, set[str]],
    ) -> None:
        """Bring the step's values to the satellites (all in ORBIT)."""
        reconfigure = [
            n
            for n in overrides
            if self.mode == "reconfigure" or (self.mode == "auto" and "reconfigure" in commands[n])
        ]
        reinitialize = [n for n in overrides if n not in reconfigure]
        for name in reconfigure:
            control.transition("reconfigure", "ORBIT", [name], payload=overrides[name])
            control.unused[name] = unused_keys_in(control.status_of(name))
            _check_used(control, {name: overrides[name]})
        if reinitialize:
            control.transition("land", "INIT", reinitialize)
            control.initialize(base.with_overrides(overrides), reinitialize)
            _check_used(control, {n: overrides[n] for n in reinitialize})
            control.transition("launch", "ORBIT", reinitialize)


def _check_used(control: RunControl, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Fail when a satellite just initialized reported a scanned key as unused."""
    ignored = {}
    for name, section in overrides.items():
        unused = {key.lower() for key in control.unused.get(name, [])}
        keys = [key for key in flat_keys(section) if key.lower() in unused]
        if keys:
            ignored[name] = f"{', '.join(keys)}: not a parameter it reads (misspelt?)"
    if ignored:
        raise RunError("scan parameter not used by its satellite", ignored)


def _overrides(
    values: Mapping[Parameter, Any], targets: Mapping[Parameter, list[str]]
) -> dict[str, dict[str, Any]]:
    """Satellite -> nested partial configuration of one step."""
    result: dict[str, dict[str, Any]] = {}
    for parameter, value in values.items():
        for name in targets[parameter]:
            section = result.setdefault(name, {})
            section.update(normalize_framework_keys({parameter.key: value}))
    return result


def _commands(controller: Controller, names: list[str]) -> dict[str, set[str]]:
    replies = controller.command("get_commands", targets=names)
    return {
        n: {c.lower() for c in r.payload} if r.ok and isinstance(r.payload, dict) else set()
        for n, r in replies.items()
    }


# Scan files are read in their own module; re-exported here, where the CLI and users import it.
from controller.scan_file import load_scan  # noqa: E402
