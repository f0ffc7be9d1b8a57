"""Data roles: the contract between a satellite and the object that moves its data.

A satellite owns exactly one :class:`DataRole`: :class:`NoDataRole` (the default),
``roles.sending.SendingRole`` (transmitters) or ``roles.receiving.ReceivingRole`` (receivers).
The transition jobs (``runtime.jobs``) call it at fixed moments; the table of when and in which
thread is in docs/internals.md ("Data roles"). A role is built with a :class:`RoleContext`,
never with the satellite: it sees the name, the network scope, a logger, the state, ``fail``,
the run's own condition marks and the metric registry, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from constellation.core.config import DataConfig
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.metrics import MetricRegistry
from constellation.net.discovery import Discovery
from constellation.net.interfaces import NetworkScope

__all__ = ["DataRole", "NoDataRole", "RoleContext"]


@dataclass(frozen=True)
class RoleContext:
    """What a data role may see of its satellite."""

    canonical_name: str
    scope: NetworkScope
    log: logging.Logger
    #: The satellite's current state.
    state: Callable[[], State]
    #: Fail the satellite to ERROR (thread-safe): ``fail(reason, error)``.
    fail: Callable[[str, BaseException | None], None]
    metrics: MetricRegistry
    #: The marks (TAINTED, DEGRADED, INTERRUPTED) of the satellite's current run.
    run_condition: Callable[[], RunCondition]
    #: True once the satellite began closing.
    closing: Callable[[], bool]
    #: Software version written into EOR run metadata.
    version: str


class DataRole:
    """The interface every data role implements; this base does nothing at every point."""

    #: Whether the ``_data`` configuration section applies to this satellite.
    handles_data = False

    def announce(self, discovery: Discovery) -> None:
        """Open and announce data services (after the standard services, before CONTROL)."""

    def configure(self, data: DataConfig) -> None:
        """Take the ``_data`` section (``initialize``, before ``do_initializing``)."""

    def launch(self) -> None:
        """Before ``do_launching`` (raise to fail the transition)."""

    def land(self) -> None:
        """After ``do_landing``, and at the end of an interrupt."""

    def begin_run(self, run_id: str, bor_tags: dict[str, Any], config: dict[str, Any]) -> None:
        """After ``do_starting``, before RUN: e.g. send the BOR with ``bor_tags``, ``config``."""

    def unblock(self) -> None:
        """As soon as an interrupt begins, from any thread: a blocked send returns now."""

    def end_run(self, interrupted: bool) -> None:
        """After ``do_run`` returned, before ``do_stopping``: drain what is queued."""

    def finish_run(self, condition: RunCondition, eor_tags: dict[str, Any]) -> None:
        """After ``do_stopping``: e.g. send the EOR with ``eor_tags`` and ``condition``."""

    def abort(self, previous_state: State) -> None:
        """On a failure, in the failing thread; must not block."""

    def close(self) -> None:
        """Close data sockets (``Satellite.close``, after user code settled)."""


class NoDataRole(DataRole):
    """The role of a satellite that neither sends nor receives data."""

    def __init__(self, ctx: RoleContext | None = None) -> None:
        """The context is not needed: nothing to send, receive or publish."""
