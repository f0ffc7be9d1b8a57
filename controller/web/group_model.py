"""MissionControl web, pure: everything the page shows, fed events with the time they happened.

:class:`GroupModel` holds the satellites' rows (state, status, role, heartbeat lives, last
reply), the header (global state, run id with its sequence number, run start, condition), a
ring buffer of log messages with WARNING/CRITICAL counters, and bounded metric series with a
``stale`` mark for senders that left or stopped announcing a metric. It does no I/O and takes
no lock: the caller serialises calls. Which run-control buttons are enabled follows
:data:`~constellation.core.fsm.ALLOWED_COMMANDS` for the present satellites' states.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from constellation.core.fsm import ALLOWED_COMMANDS
from constellation.core.states import State
from constellation.runtime.standard_commands import SHUTDOWN_STATES
from controller.state_view import global_state
from controller.web.conditions import summarize

__all__ = [
    "BUTTONS",
    "LEVELS",
    "GroupModel",
    "LogEntry",
    "LogFilter",
    "SatRow",
    "allowed_for",
    "next_sequence",
    "parse_arguments",
]

#: The run-control buttons, in page order; each button's text is its command's name.
BUTTONS = ("initialize", "launch", "start", "stop", "land", "reconfigure", "shutdown")
#: Log levels, lowest first.
LEVELS = ("TRACE", "DEBUG", "INFO", "STATUS", "WARNING", "CRITICAL")
#: States in which a run is going on (for duration and condition).
_RUNNING = frozenset({"RUN", "starting", "stopping", "interrupting"})
_FAILED = frozenset({"ERROR", "SAFE", "DEAD"})


def allowed_for(verb: str, state: str) -> bool:
    """Whether ``verb`` may begin from ``state`` (the satellite decides; this greys buttons)."""
    if state not in State.__members__:
        return False
    st = State[state]
    if verb == "shutdown":
        return st in SHUTDOWN_STATES
    return any(cmd.value == verb for cmd in ALLOWED_COMMANDS.get(st, ()))


def next_sequence(prefix: str, run_ids: Iterable[str]) -> int:
    """The sequence number after the highest ``<prefix>_<n>`` among ``run_ids`` (1 if none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
    numbers = [int(m.group(1)) for r in run_ids if (m := pattern.match(r))]
    return max(numbers, default=0) + 1


_ARGS = re.compile(r"^(Arguments|Payload): (.*)\.$", re.MULTILINE)
_PARAM = re.compile(r"^\s*(\w+): ([\w\[\], |]+?)\s*$")


def parse_arguments(help_text: str) -> list[dict[str, str]]:
    """Typed parameters from a ``get_commands`` help text: ``[{"name", "type"}]``.

    The help text ends in ``Arguments: a: int, b: str.`` (or ``Payload: ...``, or ``No
    arguments.``); unknown forms give no parameters (the page then offers a raw JSON field).
    """
    match = _ARGS.search(help_text)
    if match is None:
        return []
    params = []
    for part in re.split(r",\s*(?=\w+:)", match.group(2)):
        m = _PARAM.match(part)
        if m:
            params.append({"name": m.group(1), "type": m.group(2)})
    return params


@dataclass
class SatRow:
    """One satellite's row of the table."""

    name: str
    type: str
    state: str = "?"
    last_state: str = "?"
    status: str = ""
    role: str = "?"
    lives: int = 0
    last_reply: str = ""
    reply_ok: bool = True
    present: bool = True
    changed_at: float = 0.0


@dataclass(frozen=True)
class LogEntry:
    """One log message as the page shows it."""

    seq: int
    time: float
    sender: str
    level: str
    topic: str
    message: str


@dataclass(frozen=True)
class LogFilter:
    """Minimum level, sender, topic and a case-insensitive text; empty fields match all."""

    level: str = "TRACE"
    sender: str = ""
    topic: str = ""
    text: str = ""

    def matches(self, entry: LogEntry) -> bool:
        level = LEVELS.index(self.level) if self.level in LEVELS else 0
        if entry.level in LEVELS and LEVELS.index(entry.level) < level:
            return False
        if self.sender and entry.sender.lower() != self.sender.lower():
            return False
        if self.topic and entry.topic.lower() != self.topic.lower():
            return False
        return not self.text or self.text.lower() in entry.message.lower()


@dataclass
class Series:
    """A bounded series of one metric of one sender."""

    unit: str = ""
    points: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=600))
    stale: bool = False
    rate: float | None = None  # change per second between the last two points


class GroupModel:
    """The page's state; every mutator returns the events (``kind``, data) to stream."""

    def __init__(
        self, group: str, run_prefix: str = "run", log_capacity: int = 2000, points: int = 600
    ) -> None:
        self.group = group
        self.run_prefix = run_prefix
        self.sequence = 1
        self.sats: dict[str, SatRow] = {}
        self.logs: deque[LogEntry] = deque(maxlen=log_capacity)
        self.counters = {"WARNING": 0, "CRITICAL": 0}
        self.series: dict[tuple[str, str], Series] = {}
        self._points = points
        self._log_seq = 0
        self.run_id = ""
        self.run_started: float | None = None
        self.run_ended: float | None = None
        self.condition = ""  # inferred from the satellites' states during the run
        self.received_conditions: dict[str, str] = {}  # receiver -> its RUN_CONDITION
        self.eor_conditions: dict[str, str] = {}  # sender -> condition of its EOR (live tap)

    # --- queries ------------------------------------------------------------------------------
    def present(self) -> list[SatRow]:
        return [row for row in self.sats.values() if row.present]

    def global_state(self) -> str:
        return global_state(row.state for row in self.present())

    def allowed(self) -> dict[str, bool]:
        """Button -> enabled: allowed for every present, live satellite (and there is one)."""
        states = [row.state for row in self.present() if row.state != "DEAD"]
        return {
            verb: bool(states) and all(allowed_for(verb, s) for s in states) for verb in BUTTONS
        }

    def next_run_id(self) -> str:
        return f"{self.run_prefix}_{self.sequence}"

    def header(self, now: float) -> dict[str, Any]:
        end = self.run_ended if self.run_ended is not None else now
        duration = None if self.run_started is None else max(0.0, end - self.run_started)
        gstate = self.global_state()
        return {
            "group": self.group,
            "satellites": len(self.present()),
            "state": gstate.lstrip("~"),
            "mixed": gstate.startswith("~"),
            "run_id": self.run_id,
            "next_run_id": self.next_run_id(),
            "duration": duration,
            **self._condition(),
            "allowed": self.allowed(),
            "counters": dict(self.counters),
        }

    def _condition(self) -> dict[str, Any]:
        return summarize(self.received_conditions, self.eor_conditions, self.condition)

    def run_condition(self, receiver: str, text: str, now: float) -> list[tuple[str, Any]]:
        """A receiver's ``RUN_CONDITION`` metric: the condition of the run it just ended."""
        self.received_conditions[receiver] = text
        return [("header", self.header(now))]

    def eor(self, sender: str, run_id: str, condition: str, now: float) -> list[tuple[str, Any]]:
        """An EOR seen by the live tap; one of another run than the current one is ignored."""
        if not condition or (self.run_id and run_id != self.run_id):
            return []
        self.eor_conditions[sender] = condition
        return [("header", self.header(now))]

    def row(self, name: str) -> dict[str, Any]:
        return asdict(self.sats[name])

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything a freshly connected page needs."""
        return {
            "header": self.header(now),
            "satellites": [asdict(row) for row in self.sats.values()],
            "logs": [asdict(e) for e in list(self.logs)[-500:]],
            "metrics": self.metric_list(),
        }

    def filtered_logs(self, flt: LogFilter, limit: int = 500) -> list[LogEntry]:
        return [e for e in self.logs if flt.matches(e)][-limit:]

    def metric_list(self) -> list[dict[str, Any]]:
        return [
            {"sender": s, "metric": m, "unit": ser.unit, "stale": ser.stale, "rate": ser.rate}
            for (s, m), ser in sorted(self.series.items())
        ]

    def points(self, sender: str, metric: str) -> list[tuple[float, float]]:
        series = self.series.get((sender, metric))
        return [] if series is None else list(series.points)

    # --- satellites -----------------------------------------------------------------------------
    def _row(self, name: str) -> SatRow:
        row = self.sats.get(name)
        if row is None:
            row = self.sats[name] = SatRow(name, name.partition(".")[0])
        return row

    def _sat_event(self, row: SatRow, now: float) -> list[tuple[str, Any]]:
        return [("sat", asdict(row)), ("header", self.header(now))]

    def joined(self, name: str, now: float) -> list[tuple[str, Any]]:
        row = self._row(name)
        row.present = True
        return self._sat_event(row, now)

    def left(self, name: str, now: float) -> list[tuple[str, Any]]:
        return self.state(name, "DEAD", now)  # it stays in the table, DEAD

    def state(
        self, name: str, state: str, now: float, status: str | None = None
    ) -> list[tuple[str, Any]]:
        row = self._row(name)
        if state != row.state:
            row.changed_at = now
        if state != "DEAD":
            row.last_state = state
        row.state = state
        if status is not None:
            row.status = status
        self._follow_run(now)
        return self._sat_event(row, now)

    def heartbeat(
        self, name: str, lives: int, role: str, status: str | None, now: float
    ) -> list[tuple[str, Any]]:
        """Lives, role and status from the heartbeat receiver; events only when they changed."""
        row = self._row(name)
        new = (lives, role, row.status if status is None else status)
        if new == (row.lives, row.role, row.status):
            return []
        row.lives, row.role, row.status = new
        return [("sat", asdict(row))]

    def reply(self, name: str, text: str, ok: bool, now: float) -> list[tuple[str, Any]]:
        row = self._row(name)
        row.last_reply, row.reply_ok = text, ok
        return [("sat", asdict(row))]

    def run_ids_seen(self, run_ids: Iterable[str]) -> list[tuple[str, Any]]:
        """Satellites' ``get_run_id`` answers: the sequence continues after the highest."""
        run_ids = [r for r in run_ids if r]
        self.sequence = max(self.sequence, next_sequence(self.run_prefix, run_ids))
        if not self.run_id and run_ids:
            self.run_id = run_ids[-1]  # the run before this page started
            return [("header", self.header(0.0))]
        return []

    def started(self, run_id: str, now: float) -> list[tuple[str, Any]]:
        """A start command was accepted with ``run_id``: the sequence moves on."""
        self.run_id = run_id
        self.run_started, self.run_ended = now, None
        self.condition = "GOOD"
        self.received_conditions, self.eor_conditions = {}, {}
        self.sequence = max(self.sequence, next_sequence(self.run_prefix, [run_id]))
        return [("header", self.header(now))]

    def _follow_run(self, now: float) -> None:
        if self.run_started is None or self.run_ended is not None:
            return
        states = [row.state for row in self.sats.values() if row.present]
        if any(s in _FAILED for s in states):
            self.condition = "INTERRUPTED" if "SAFE" in states else "TAINTED"
        if states and not any(s in _RUNNING for s in states):
            self.run_ended = now

    # --- logs -----------------------------------------------------------------------------------
    def log(
        self, sender: str, level: str, topic: str, message: str, when: float
    ) -> list[tuple[str, Any]]:
        self._log_seq += 1
        entry = LogEntry(self._log_seq, when, sender, level.upper(), topic, message)
        self.logs.append(entry)
        events: list[tuple[str, Any]] = [("log", asdict(entry))]
        if entry.level in self.counters:
            self.counters[entry.level] += 1
            events.append(("counters", dict(self.counters)))
        return events

    def reset_counters(self) -> list[tuple[str, Any]]:
        self.counters = dict.fromkeys(self.counters, 0)
        return [("counters", dict(self.counters))]

    # --- metrics --------------------------------------------------------------------------------
    def metric(
        self, sender: str, name: str, value: Any, unit: str, now: float
    ) -> list[tuple[str, Any]]:
        """A numeric sample (others are ignored: they cannot be charted)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return []
        series = self.series.get((sender, name))
        if series is None:
            series = self.series[(sender, name)] = Series(unit, deque(maxlen=self._points))
        was_stale = series.stale
        series.stale = False
        if series.points:
            t0, v0 = series.points[-1]
            if now > t0 and value >= v0:
                series.rate = (value - v0) / (now - t0)
        series.points.append((now, float(value)))
        point = {"sender": sender, "metric": name, "t": now, "v": float(value), "unit": unit}
        events: list[tuple[str, Any]] = [("point", point)]
        if was_stale:
            events.append(("metrics", self.metric_list()))
        return events

    def announced(self, sender: str, metrics: Iterable[str]) -> list[tuple[str, Any]]:
        """``sender`` now announces exactly ``metrics``: the others are marked stale."""
        names = {m.upper() for m in metrics}
        return self._mark(sender, lambda m: m.upper() not in names)

    def sender_gone(self, sender: str) -> list[tuple[str, Any]]:
        """``sender``'s monitoring disconnected: all its metrics are stale."""
        return self._mark(sender, lambda m: True)

    def _mark(self, sender: str, stale: Any) -> list[tuple[str, Any]]:
        changed = False
        for (s, m), series in self.series.items():
            if s.lower() == sender.lower():
                new = bool(stale(m))
                changed |= new != series.stale
                series.stale = new
        return [("metrics", self.metric_list())] if changed else []

    def rates(self, prefixes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Per transmitter records/s and MB/s from its TX_RECORDS and TX_BYTES series."""
        rows = []
        senders = sorted({s for s, m in self.series if m == "TX_RECORDS"})
        for sender in senders:
            rec = self.series[(sender, "TX_RECORDS")]
            byt = self.series.get((sender, "TX_BYTES"))
            rows.append(
                {
                    "sender": sender,
                    "records_per_s": rec.rate or 0.0,
                    "mb_per_s": (byt.rate or 0.0) / 1e6 if byt is not None else 0.0,
                    "records": rec.points[-1][1] if rec.points else 0,
                    "stale": rec.stale,
                }
            )
        return rows
