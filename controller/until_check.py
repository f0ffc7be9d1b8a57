"""Controller layer: check an ``until`` condition against the metrics the group declares.

Every satellite answers a ``STAT?`` subscription with the list of its metrics (CMDP). Before
a run starts, :func:`declared_metrics` collects those lists and :func:`check_until` (pure)
refuses a condition on a metric nobody declares (a misspelt ``RX_RECORD`` would otherwise hold
the run until ``--duration`` or Ctrl-C) or on a satellite that is not in the group.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from constellation.net.listener import MonitoringListener
from constellation.protocol.cmdp1 import CMDP1Notification
from controller.controller import Controller
from controller.runs import Until

__all__ = ["UntilVerdict", "check_until", "declared_metrics", "verify_until"]

#: Seconds to wait for the satellites' metric lists (they answer as soon as subscribed).
DECLARATION_TIMEOUT = 3.0


@dataclass(frozen=True)
class UntilVerdict:
    """``error``: the condition can never be met (refuse the run); ``warning``: it could not
    be checked completely (some satellite sent no metric list)."""

    error: str | None = None
    warning: str | None = None


def check_until(
    until: Until,
    present: Iterable[str],
    declared: Mapping[str, Iterable[str]],
    what: str = "--until",
) -> UntilVerdict:
    """Judge ``until`` given the group's satellites and their declared metrics.

    ``present``: canonical names of the group; ``declared``: canonical name (any case) ->
    names of the metrics it declares, for the satellites that answered; ``what``: where the
    condition was given, as the messages name it. Pure function.
    """
    names = {name.lower(): name for name in present}
    lists = {name.lower(): {m.upper() for m in metrics} for name, metrics in declared.items()}
    metric = until.metric.upper()
    if until.satellite is not None:
        target = names.get(until.satellite.lower())
        if target is None:
            listed = ", ".join(sorted(names.values(), key=str.lower)) or "none"
            return UntilVerdict(
                f"{what} names {until.satellite}, which is not a satellite of this group "
                f"(present: {listed})"
            )
        relevant = [target]
    else:
        relevant = list(names.values())
    answered = [n for n in relevant if n.lower() in lists]
    if any(metric in lists[n.lower()] for n in answered):
        return UntilVerdict()
    silent = [n for n in relevant if n.lower() not in lists]
    if silent:
        return UntilVerdict(
            warning=f"cannot check {what} metric {metric}: no metric list from "
            f"{', '.join(sorted(silent, key=str.lower))}"
        )
    known = sorted({m for n in answered for m in lists[n.lower()]})
    close = difflib.get_close_matches(metric, known, n=1)
    subject = relevant[0] if until.satellite else "any satellite of this group"
    owner = "it" if until.satellite else "the group"
    listed = ", ".join(known) or "none"
    if close:
        return UntilVerdict(
            f"{what} metric {metric} is not declared by {subject} (did you mean {close[0]}?); "
            f"{owner} declares: {listed}"
        )
    return UntilVerdict(
        f"{what} metric {metric} is not declared by {subject}; {owner} declares: {listed}"
    )


def declared_metrics(
    ctl: Controller, names: Iterable[str], timeout: float = DECLARATION_TIMEOUT
) -> dict[str, list[str]]:
    """Canonical name -> declared metrics, for those of ``names`` that answer within
    ``timeout`` s (a listener on the controller's discovery, closed again before returning)."""
    wanted = {name.lower() for name in names}
    changed = threading.Event()

    def on_notification(message: CMDP1Notification) -> None:
        if message.kind == "STAT":
            changed.set()

    listener = MonitoringListener(
        ctl.group,
        discovery=ctl.discovery,
        level=None,
        metrics=None,
        on_notification=on_notification,
        max_message_size=ctl.settings.max_message_size,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            lists = {n: listener.offered(n, "STAT") for n in wanted}
            got = {n: sorted(topics) for n, topics in lists.items() if topics}
            remaining = deadline - time.monotonic()
            if len(got) == len(wanted) or remaining <= 0:
                return got
            changed.wait(remaining)
            changed.clear()
    finally:
        listener.close()


def verify_until(ctl: Controller, present: list[str], until: Until, what: str) -> UntilVerdict:
    """:func:`check_until` with the metric lists of the satellites concerned (all ``present``
    ones, or the one ``until`` names) fetched by :func:`declared_metrics`."""
    who = (until.satellite or "").lower()
    names = [n for n in present if who in ("", n.lower())]
    return check_until(until, present, declared_metrics(ctl, names), what)
