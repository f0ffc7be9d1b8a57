"""Assembly layer: the Satellite base class and its small user API.

A satellite assembles explicit parts: a state machine (``core.fsm``), a command registry filled
from the standard command table (``runtime.standard_commands``, which sees a narrow view of the
satellite) and the ``custom_commands``, a transition runner (``runtime.transitions``), a
service set (``runtime.services``: loop, sockets, discovery), autonomy and metrics (which get
callables, never the satellite) and a data role (``roles``: sending, receiving or none, built
from a :class:`~constellation.roles.base.RoleContext`). User code never runs in the event-loop
thread: hooks and ``do_run`` run in the hook worker, custom commands in the command worker,
periodic tasks, metric polls and a ``do_failure`` caused from the loop in the task worker
(``runtime.workers``). So a blocking call delays neither heartbeats nor command replies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

from constellation import __version__
from constellation.autonomy import Autonomy, AutonomyLinks
from constellation.core.commands import CommandRegistry, CommandResult
from constellation.core.config import Configuration, FrameworkConfig
from constellation.core.environment import ProcessSettings
from constellation.core.fsm import Command, SatelliteFSM
from constellation.core.roles import Role
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import (
    BindError,
    DuplicateNameError,
    HookError,
    InvalidNameError,
    UsageError,
)
from constellation.metrics import MetricRegistry
from constellation.net.command_server import CommandServer
from constellation.net.discovery import Discovery
from constellation.net.heartbeat import HeartbeatReceiver, HeartbeatSender, HeartbeatState
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop, TimerHandle
from constellation.net.monitoring import STATUS, CMDPLogHandler, MonitoringPublisher
from constellation.protocol.common import validate_name
from constellation.roles.base import DataRole, NoDataRole, RoleContext
from constellation.runtime.custom_commands import CustomCommand, custom_command_specs
from constellation.runtime.failures import FailureHandler
from constellation.runtime.interrupts import InterruptHandler
from constellation.runtime.jobs import TransitionJobs
from constellation.runtime.lifecycle import Lifecycle
from constellation.runtime.requests import RequestRouter
from constellation.runtime.services import ServiceHandlers, ServicePart, ServiceSet
from constellation.runtime.standard_commands import standard_commands
from constellation.runtime.tasks import PeriodicTasks
from constellation.runtime.transitions import DEFAULT_STATUS, HookCaller, TransitionRunner
from constellation.runtime.workers import UserThreads

__all__ = ["CustomCommand", "HookError", "Satellite"]


class Satellite(Lifecycle):
    """Base class of every satellite: override the ``do_*`` hooks (see :class:`Lifecycle`)."""

    #: User commands of this satellite class (see :class:`CustomCommand`).
    custom_commands: ClassVar[tuple[CustomCommand, ...]] = ()
    #: Version reported by ``get_version``.
    version: ClassVar[str] = __version__

    def __init__(
        self,
        name: str,
        group: str,
        *,
        interfaces: list[str] | None = None,
        cmd_port: int = 0,
        hb_port: int = 0,
        mon_port: int = 0,
        discovery: str = "mdns",
        name_check: float = 0.0,
        data_role: Callable[[RoleContext], DataRole] | None = None,
        settings: ProcessSettings | None = None,
    ) -> None:
        """``data_role(context)`` builds the data role (default: none); ``settings`` are the
        process knobs (the launcher passes those of the environment; None: the defaults)."""
        settings = settings or ProcessSettings()
        try:
            validate_name(name)
            validate_name(type(self).__name__)
        except ValueError as exc:
            raise InvalidNameError(str(exc)) from exc
        self.type_name = type(self).__name__
        self.name = name
        self.group = group
        self.canonical_name = f"{self.type_name}.{name}"
        self.log = logging.getLogger(f"sat.{self.canonical_name}")
        self.scope = NetworkScope.from_interfaces(interfaces)

        self.fsm = SatelliteFSM(on_change=self._on_state_change)
        self._last_changed = datetime.now(timezone.utc)
        self._status = "Satellite is new"
        self.config = Configuration({})
        self.framework = FrameworkConfig()
        self.role = Role.DYNAMIC
        self.run_id = ""
        self.run_condition = RunCondition.GOOD
        #: Tags of the begin-of-run / end-of-run messages of a sending role (set them in
        #: ``do_starting`` / ``do_stopping``).
        self.bor_tags: dict[str, Any] = {}
        self.eor_tags: dict[str, Any] = {}
        self.interrupted_from: State | None = None
        self._interrupt_reason = ""
        self._stop_event = threading.Event()
        self._shutdown_event = threading.Event()
        self._started = False
        self._closed = False

        # Threads of user code (never the loop thread) and what runs in them right now.
        self.threads = UserThreads(self.canonical_name)
        self._active = self.threads.active
        self._tasks = self.threads.tasks
        self._hook = HookCaller(self, self._active)
        self._jobs = TransitionJobs(self, self._hook, self._stop_event)
        self._failures = FailureHandler(
            self.fsm,
            self._stop_event,
            self.log,
            set_status=self.set_status,
            clean_up=lambda previous: self.data_role.abort(previous),
            do_failure=self.do_failure,
            in_loop_thread=lambda: self.loop is not None and self.loop.in_loop_thread(),
            tasks=self._tasks,
            active=self._active,
        )
        self._interrupts = InterruptHandler(
            lambda: self.fsm.state,
            self.log,
            begin=self._begin_interrupt,
            unblock=lambda: self.data_role.unblock(),
        )
        self._periodic = PeriodicTasks(self._tasks, self._active, lambda: self.fsm.state, self.log)

        self.commands = CommandRegistry(standard_commands(self))
        user_commands = [
            self.commands.add(spec).name
            for spec in custom_command_specs(self, self.custom_commands)
        ]
        self.metrics = MetricRegistry(
            self.canonical_name, lambda: self.fsm.state, self.log.name, settings.metric_scale
        )
        self.data_role: DataRole = (data_role or NoDataRole)(self._role_context())
        self.autonomy = Autonomy(
            AutonomyLinks(
                state=lambda: self.fsm.state,
                peer=lambda name: self.heartbeats.peer(name) if self.heartbeats else None,
                interrupt=self.interrupt,
                mark_degraded=self.mark_run_degraded,
                set_status=self.set_status,
                closing=lambda: self._closed,
            ),
            self.log.name,
        )
        self.transitions = TransitionRunner(
            self.fsm,
            self.threads.hooks,
            self._stop_event,
            await_conditions=self.autonomy.await_conditions,
            fail=self.fail,
            set_status=self.set_status,
            default_status=self._default_status,
            on_run=self._jobs.run,
        )
        self._router = RequestRouter(
            self.commands,
            lambda: self.fsm.state,
            self.canonical_name,
            self.threads.commands,
            self._active,
            deferred=user_commands,
        )
        ports = {"cmd": cmd_port, "hb": hb_port, "mon": mon_port}
        self.services = ServiceSet(
            self.canonical_name, group, self.scope, ports, discovery, name_check, settings
        )

    # ------------------------------------------------------------------------------------------
    # user API
    # ------------------------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """True once ``stop`` (or an interrupt or failure) asks ``do_run`` to return."""
        return self._stop_event.is_set()

    def wait_for_stop(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` s for a stop request; True if stop was requested."""
        return self._stop_event.wait(timeout)

    @property
    def state(self) -> State:
        return self.fsm.state

    @property
    def status(self) -> str:
        return self._status

    @property
    def last_changed(self) -> datetime:
        """When the state last changed (UTC)."""
        return self._last_changed

    def set_status(self, text: str) -> None:
        """Set the status text shown next to the state (sent with the next heartbeat)."""
        self._status = text

    def mark_run_tainted(self, reason: str = "") -> None:
        """Flag the current run TAINTED (kept in the EOR run metadata)."""
        self.run_condition |= RunCondition.TAINTED
        self.log.warning("run marked tainted%s", f": {reason}" if reason else "")

    def mark_run_degraded(self, reason: str = "") -> None:
        self.run_condition |= RunCondition.DEGRADED
        self.log.warning("run marked degraded%s", f": {reason}" if reason else "")

    def every(
        self, interval: float, fn: Callable[[], Any], states: frozenset[State] | None = None
    ) -> TimerHandle:
        """Call ``fn`` every ``interval`` s in the task worker (a tick is skipped while the
        previous call still runs); ``states`` limits the calls to those states."""
        if self.loop is None:
            raise UsageError("start() the satellite before scheduling tasks")
        return self._periodic.every(self.loop, interval, fn, states)

    # --- parts, for the framework and tests -------------------------------------------------
    loop: ServicePart[EventLoop] = ServicePart()
    discovery: ServicePart[Discovery] = ServicePart()
    monitoring: ServicePart[MonitoringPublisher] = ServicePart()
    heartbeats: ServicePart[HeartbeatReceiver] = ServicePart()
    _heartbeat: ServicePart[HeartbeatSender] = ServicePart()
    _command_server: ServicePart[CommandServer] = ServicePart()
    _log_handler: ServicePart[CMDPLogHandler] = ServicePart()

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> Satellite:
        """Open the sockets, announce the services and begin serving commands.

        Raises :class:`DuplicateNameError` (name taken) or :class:`BindError` (a port given
        cannot be bound) after closing the satellite again.
        """
        if self._started:
            return self
        self._started = True
        handlers = ServiceHandlers(
            handle_request=self._router,
            heartbeat_state=self._heartbeat_state,
            on_peer_events=self.autonomy.on_peer_events,
            metric_topics=self.metrics.topics,
            on_loop_error=lambda exc: self.fail(f"{type(exc).__name__} in framework: {exc}", exc),
        )
        try:  # a taken name or port: close what was opened, then raise
            self.services.open(handlers, self.log, self.type_name)
            assert self.services.loop is not None and self.services.monitoring is not None
            self.metrics.start(self.services.loop, self.services.monitoring, self._run_task)
            self.services.announce(self.data_role.announce)
        except (DuplicateNameError, BindError):
            self.close()
            raise
        self.log.log(STATUS, "%s started in group '%s'", self.canonical_name, self.group)
        return self

    def wait_for_shutdown(self, timeout: float | None = None) -> bool:
        """Block until the ``shutdown`` command was received (or ``timeout``)."""
        return self._shutdown_event.wait(timeout)

    def request_shutdown(self) -> None:
        self._shutdown_event.set()

    def after_reply(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` once the reply to the command being handled was sent (or now)."""
        self._command_server.after_reply(fn) if self._command_server else fn()

    def terminate(self, reason: str, timeout: float = 4.0) -> None:
        """Interrupt to SAFE if in ORBIT or RUN, then :meth:`close`, all within ``timeout`` s.

        A hook that ignores the stop request does not hold this up: it is named in a
        CRITICAL log and left behind (its thread does not keep the process alive).
        """
        deadline = time.monotonic() + timeout
        close_grace = min(1.0, timeout / 4)
        if self.interrupt(reason):
            self.wait_for_state(State.SAFE, max(0.0, deadline - close_grace - time.monotonic()))
        self.close(hook_timeout=max(0.1, deadline - time.monotonic()))

    def close(self, hook_timeout: float = 1.0) -> None:
        """Withdraw the announcements, stop the run, call :meth:`on_close`, close every socket.
        Hooks and commands still running after ``hook_timeout`` s are named and abandoned."""
        if self._closed:
            return
        self._closed = True
        settle_until = time.monotonic() + hook_timeout
        self._stop_event.set()
        self.services.withdraw()
        self.threads.settle_or_abandon(max(0.0, settle_until - time.monotonic()), self.log)
        self.data_role.close()
        try:
            self.on_close()
        except Exception:  # the sockets are closed all the same
            self.log.exception("on_close failed")
        self._periodic.cancel_all()
        self.metrics.stop()
        self.services.close()
        self.threads.shutdown()
        self._shutdown_event.set()

    def __enter__(self) -> Satellite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands -----------------------------------------------------------------------------
    @property
    def supports_reconfigure(self) -> bool:
        return type(self).do_reconfigure is not Lifecycle.do_reconfigure

    def transition(self, command: Command, argument: Any = None) -> CommandResult:
        """Begin ``command``; its job (hooks and framework work) runs in the hook worker."""
        return self.transitions.begin(command, self._jobs.job(command, argument))

    def apply_framework(self, framework: FrameworkConfig) -> None:
        """Take the framework settings of a new configuration (hook worker, ``initialize``)."""
        self.framework = framework
        self.role = framework.role
        self.autonomy.configure(framework)
        if self._heartbeat is not None:
            self._heartbeat.max_interval_s = framework.max_heartbeat_interval

    def publish_metric(self, name: str, value: Any) -> None:
        """Publish ``value`` for metric ``name`` now, if anybody listens."""
        self.metrics.publish_now(name, value)

    def _default_status(self, command: Command, before: State) -> str:
        text = DEFAULT_STATUS[command]
        return text.format(before=before.name, reason=self._interrupt_reason, run=self.run_id)

    # --- autonomous transitions ---------------------------------------------------------------
    def interrupt(self, reason: str) -> bool:
        """Go ORBIT/RUN -> interrupting -> SAFE; returns False if not in ORBIT or RUN (the
        first of racing interrupts wins, its reason stays)."""
        return self._interrupts.interrupt(reason)

    def _begin_interrupt(self, state: State, reason: str) -> None:
        self.interrupted_from = state
        self._interrupt_reason = reason  # read by the job, so set before it can run
        self.transitions.begin(Command.interrupt, self._jobs.interrupt)

    def fail(self, reason: str, error: BaseException | None = None) -> None:
        """Go to ERROR from any state with ``reason`` as status (thread-safe).

        ``do_failure`` runs in the calling thread, or in the task worker when called from the
        event-loop thread (user code never runs there).
        """
        self._failures.fail(reason, error)

    def _run_task(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the task worker (dropped with a warning once closed)."""
        try:
            self._tasks.submit(call)
        except UsageError:
            self.log.warning("%s not run: the satellite is closed", getattr(call, "__name__", call))

    def _role_context(self) -> RoleContext:
        """What the data role sees of this satellite (never the satellite itself)."""
        return RoleContext(
            self.canonical_name,
            self.scope,
            self.log,
            state=lambda: self.fsm.state,
            fail=self.fail,
            metrics=self.metrics,
            run_condition=lambda: self.run_condition,
            closing=lambda: self._closed,
            version=self.version,
        )

    # --- state reporting ----------------------------------------------------------------------
    def _on_state_change(self, old: State, new: State) -> None:
        self._last_changed = datetime.now(timezone.utc)
        self.log.getChild("fsm").info("state %s -> %s", old.name, new.name)
        if self._heartbeat is not None:
            self._heartbeat.extrasystole(HeartbeatState(int(new), self.role.flags, self._status))
        self.metrics.publish_now("STATE", new.name)
        self.autonomy.state_changed()

    def _heartbeat_state(self) -> HeartbeatState:
        return HeartbeatState(int(self.state), self.role.flags, self._status)

    def wait_for_state(self, state: State, timeout: float) -> bool:
        """Block until the satellite is in ``state`` (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state is state:
                return True
            self.autonomy.wait_change(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.state is state
