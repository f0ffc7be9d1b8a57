"""Assembly layer: the Satellite base class and its small user API.

A satellite is composed of explicit parts: a state machine (``core.fsm``), a command registry
(``core.commands``), a configuration (``core.config``), and the I/O services of ``net/`` — command
server, heartbeat sender and receiver, monitoring publisher and discovery — all served by one
event loop. User code overrides the ``do_*`` hooks; they run in one worker thread, so a hook may
block (hardware calls, ``do_run``) without delaying command replies or heartbeats.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

import zmq

from constellation import __version__
from constellation.autonomy import Autonomy
from constellation.core.commands import CommandRegistry, CommandResult, CommandSpec, Param
from constellation.core.config import (
    Configuration,
    FrameworkConfig,
    normalize_framework_keys,
    resolve_env,
)
from constellation.core.fsm import Command, SatelliteFSM
from constellation.core.heartbeat_tracker import PeerEvent
from constellation.core.roles import Role
from constellation.core.run_tracker import RunCondition
from constellation.core.states import State
from constellation.errors import (
    ConfigError,
    IncompleteCommandError,
    InvalidStateError,
    SendingStoppedError,
    TransitionError,
)
from constellation.metrics import MetricRegistry
from constellation.net.command_server import CommandServer
from constellation.net.discovery import Discovery, DiscoveryEvent, ServiceId, make_discovery
from constellation.net.heartbeat import HeartbeatReceiver, HeartbeatSender, HeartbeatState
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop, TimerHandle
from constellation.net.monitoring import STATUS, TRACE, CMDPLogHandler, MonitoringPublisher
from constellation.protocol.common import validate_name, validate_run_id
from constellation.protocol.cscp1 import CSCP1Message

__all__ = ["CustomCommand", "HookError", "Satellite"]


@dataclass(frozen=True)
class CustomCommand:
    """Declaration of a user command: the method of the same name is its handler."""

    name: str
    description: str
    params: tuple[tuple[str, type], ...] = ()
    allowed_states: frozenset[State] | None = None


class HookError(Exception):
    """An exception raised inside a user hook, with the hook's name."""

    def __init__(self, hook: str, error: BaseException) -> None:
        self.hook = hook
        self.error = error
        super().__init__(f"{type(error).__name__} in {hook}: {error}")


_STEADY_FOR_SHUTDOWN = frozenset({State.NEW, State.INIT, State.SAFE, State.ERROR})


class Satellite:
    """Base class of every satellite: override the ``do_*`` hooks."""

    #: User commands of this satellite class (see :class:`CustomCommand`).
    custom_commands: ClassVar[tuple[CustomCommand, ...]] = ()
    #: Version reported by ``get_version``.
    version: ClassVar[str] = __version__
    #: Whether the ``_data`` configuration section applies (transmitters and receivers).
    handles_data: ClassVar[bool] = False

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
    ) -> None:
        validate_name(name)
        validate_name(type(self).__name__)
        self.type_name = type(self).__name__
        self.name = name
        self.group = group
        self.canonical_name = f"{self.type_name}.{name}"
        self.log = logging.getLogger(f"sat.{self.canonical_name}")
        self.scope = NetworkScope.from_interfaces(interfaces)
        self._ports = {"cmd": cmd_port, "hb": hb_port, "mon": mon_port}
        self._discovery_kind = discovery

        self.fsm = SatelliteFSM(on_change=self._on_state_change)
        self._last_changed = datetime.now(timezone.utc)
        self._status = "Satellite is new"
        self.config = Configuration({})
        self.framework = FrameworkConfig()
        self.role = Role.DYNAMIC
        self.run_id = ""
        self.run_condition = RunCondition.GOOD
        self.interrupted_from: State | None = None
        self._interrupt_reason = ""
        self._stop_event = threading.Event()
        self._shutdown_event = threading.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"{self.canonical_name}-hooks")
        self._timers: list[TimerHandle] = []

        self.commands = CommandRegistry()
        self._register_standard_commands()
        self._register_custom_commands()
        self.metrics = MetricRegistry(self)
        self.autonomy = Autonomy(self)

        self.loop: EventLoop | None = None
        self.discovery: Discovery | None = None
        self._command_server: CommandServer | None = None
        self._heartbeat: HeartbeatSender | None = None
        self.heartbeats: HeartbeatReceiver | None = None
        self.monitoring: MonitoringPublisher | None = None
        self._log_handler: CMDPLogHandler | None = None
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------------------------------
    # user hooks (run in the worker thread)
    # ------------------------------------------------------------------------------------------
    def do_initializing(self, config: Configuration) -> str | None:
        """Read and check the configuration; connect to hardware."""
        return None

    def do_launching(self) -> str | None:
        """Prepare for data taking (e.g. ramp up voltages)."""
        return None

    def do_landing(self) -> str | None:
        """Undo ``do_launching``."""
        return None

    def do_reconfigure(self, partial: Configuration) -> str | None:
        """Apply a partial configuration in ORBIT (override to support ``reconfigure``)."""
        raise NotImplementedError

    def do_starting(self, run_id: str) -> str | None:
        """Prepare run ``run_id``."""
        return None

    def do_run(self, run_id: str) -> str | None:
        """Take data until :meth:`stop_requested` is true (default: just wait)."""
        self._stop_event.wait()
        return None

    def do_stopping(self) -> str | None:
        """Finish the current run."""
        return None

    def do_interrupting(self) -> str | None:
        """Bring the satellite to SAFE: by default stop if running, then land."""
        if self.interrupted_from is State.RUN:
            self.do_stopping()
        self.do_landing()
        return None

    def do_failure(self) -> None:
        """Called on entering ERROR; put hardware in a safe condition."""

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
        self,
        interval: float,
        fn: Callable[[], Any],
        states: frozenset[State] | None = None,
    ) -> TimerHandle:
        """Call ``fn`` every ``interval`` s (in the loop thread; keep it short)."""
        if self.loop is None:
            raise RuntimeError("start() the satellite before scheduling tasks")

        def tick() -> None:
            if states is not None and self.state not in states:
                return
            try:
                fn()
            except Exception:
                self.log.exception("scheduled task %s failed", getattr(fn, "__name__", fn))

        handle = self.loop.call_every(interval, tick, first=interval)
        self._timers.append(handle)
        return handle

    # ------------------------------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------------------------------
    def start(self) -> Satellite:
        """Open the sockets, announce the services and begin serving commands."""
        if self._started:
            return self
        self._started = True
        self.loop = EventLoop(zmq.Context.instance(), f"{self.canonical_name}-loop")
        self.loop.on_error = self._on_framework_error
        self.loop.start()
        self._open_services()
        self._announce()
        self.log.log(STATUS, "%s started in group '%s'", self.canonical_name, self.group)
        return self

    def _open_services(self) -> None:
        assert self.loop is not None
        self.monitoring = MonitoringPublisher(
            self.loop,
            self.scope,
            self.canonical_name,
            self._ports["mon"],
            log_topics=self._log_topics,
            metric_topics=self.metrics.topics,
        )
        self._log_handler = CMDPLogHandler(self.monitoring, self.log.name, self.type_name)
        self.log.addHandler(self._log_handler)
        # Everything down to TRACE reaches the handlers: the CMDP handler sends only what
        # somebody subscribed to, the console handler filters by its own level.
        self.log.setLevel(TRACE if self.log.level == logging.NOTSET else self.log.level)
        self._heartbeat = HeartbeatSender(
            self.loop,
            self.scope,
            self.canonical_name,
            self._heartbeat_state,
            self._ports["hb"],
        )
        self.heartbeats = HeartbeatReceiver(self.loop, self.canonical_name, self._on_peer_events)
        self._command_server = CommandServer(
            self.loop, self.scope, self.canonical_name, self._handle_request, self._ports["cmd"]
        )
        self.metrics.start()

    def _announce(self) -> None:
        assert self._command_server and self._heartbeat and self.monitoring and self.heartbeats
        self.discovery = make_discovery(
            self._discovery_kind, self.group, self.canonical_name, self.scope
        )
        self.discovery.announce(ServiceId.MONITORING, self.monitoring.port)
        self.discovery.announce(ServiceId.HEARTBEAT, self._heartbeat.port)
        self._announce_extra(self.discovery)
        self.discovery.announce(ServiceId.CONTROL, self._command_server.port)
        self.discovery.add_listener([ServiceId.HEARTBEAT], self._on_heartbeat_service)

    def _announce_extra(self, discovery: Discovery) -> None:
        """Announce additional services (the data service of transmitters)."""

    def _on_heartbeat_service(self, event: DiscoveryEvent, service: Any) -> None:
        assert self.heartbeats is not None
        if event is DiscoveryEvent.ADDED:
            self.heartbeats.peer_added(service)
        else:
            self.heartbeats.peer_removed(service)

    def wait_for_shutdown(self, timeout: float | None = None) -> bool:
        """Block until the ``shutdown`` command was received (or ``timeout``)."""
        return self._shutdown_event.wait(timeout)

    def request_shutdown(self) -> None:
        self._shutdown_event.set()

    def close(self) -> None:
        """Withdraw the announcements, stop the run if any, close every socket."""
        if self._closed:
            return
        self._closed = True
        self._stop_event.set()
        if self.discovery is not None:
            self.discovery.close()
        self._close_extra()
        for handle in self._timers:
            handle.cancel()
        self.metrics.stop()
        for part in (self._command_server, self.heartbeats, self._heartbeat, self.monitoring):
            if part is not None:
                part.close()
        if self._log_handler is not None:
            self.log.removeHandler(self._log_handler)
        if self.loop is not None:
            self.loop.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._shutdown_event.set()

    def _close_extra(self) -> None:
        """Close additional sockets (data sockets of transmitters and receivers)."""

    def __enter__(self) -> Satellite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # commands
    # ------------------------------------------------------------------------------------------
    def _handle_request(self, request: CSCP1Message) -> CSCP1Message:
        return self.commands.dispatch(request, self.state, self.canonical_name)

    def _register_standard_commands(self) -> None:
        add = self.commands.add
        info = [
            ("get_name", "Canonical name of this satellite.", lambda: self.canonical_name),
            ("get_version", "Version of this satellite.", lambda: self.version),
            ("get_cnstln_version", "Version of the framework.", lambda: __version__),
            ("get_status", "Current status text.", lambda: self._status),
            ("get_run_id", "Identifier of the current or last run.", lambda: self.run_id),
        ]
        for name, doc, fn in info:
            add(CommandSpec(name, _text_result(fn), doc))
        add(CommandSpec("get_commands", self._cmd_get_commands, "List the public commands."))
        add(CommandSpec("_get_commands", self._cmd_get_hidden, "List the hidden commands."))
        add(CommandSpec("get_state", self._cmd_get_state, "Current state (name, code, time)."))
        add(CommandSpec("get_config", self._cmd_get_config, "The effective configuration."))
        add(CommandSpec("get_role", self._cmd_get_role, "Autonomy role and its heartbeat flags."))
        add(
            CommandSpec(
                "initialize",
                self._cmd_initialize,
                "Initialize with a configuration map (NEW, INIT, SAFE, ERROR -> INIT).",
                (Param("config", dict),),
                raw_payload=True,
            )
        )
        add(CommandSpec("launch", self._cmd(Command.launch), "Launch: INIT -> ORBIT."))
        add(CommandSpec("land", self._cmd(Command.land), "Land: ORBIT -> INIT."))
        add(
            CommandSpec(
                "start",
                self._cmd_start,
                "Start a run with the given run identifier: ORBIT -> RUN.",
                (Param("run_id", str),),
                raw_payload=True,
            )
        )
        add(CommandSpec("stop", self._cmd(Command.stop), "Stop the run: RUN -> ORBIT."))
        if self.supports_reconfigure:
            add(
                CommandSpec(
                    "reconfigure",
                    self._cmd_reconfigure,
                    "Apply a partial configuration map in ORBIT.",
                    (Param("partial", dict),),
                    raw_payload=True,
                )
            )
        add(
            CommandSpec(
                "shutdown",
                self._cmd_shutdown,
                "Shut the satellite down (NEW, INIT, SAFE, ERROR).",
                allowed_states=_STEADY_FOR_SHUTDOWN,
            )
        )
        add(CommandSpec("_interrupt", self._cmd_interrupt, "Interrupt to SAFE (debugging)."))
        add(CommandSpec("_failure", self._cmd_failure, "Go to ERROR (debugging)."))

    def _register_custom_commands(self) -> None:
        for declared in self.custom_commands:
            handler = getattr(self, declared.name, None)
            if not callable(handler):
                raise TypeError(
                    f"{self.type_name} declares command '{declared.name}' "
                    "but has no method of that name"
                )
            params = tuple(Param(n, t) for n, t in declared.params)
            self.commands.add(
                CommandSpec(
                    declared.name, handler, declared.description, params, declared.allowed_states
                )
            )

    @property
    def supports_reconfigure(self) -> bool:
        return type(self).do_reconfigure is not Satellite.do_reconfigure

    def _cmd_get_commands(self) -> CommandResult:
        public = self.commands.public()
        return CommandResult(f"{len(public)} commands known", public)

    def _cmd_get_hidden(self) -> CommandResult:
        hidden = self.commands.hidden()
        return CommandResult(f"{len(hidden)} hidden commands known", hidden)

    def _cmd_get_state(self) -> CommandResult:
        tags = {
            "last_changed": self._last_changed,
            "last_changed_iso": self._last_changed.isoformat(),
        }
        return CommandResult(self.state.name, int(self.state), tags)

    def _cmd_get_config(self) -> CommandResult:
        return CommandResult("Effective configuration", self.config.effective())

    def _cmd_get_role(self) -> CommandResult:
        return CommandResult(self.role.name, self.role.flags)

    def _cmd(self, command: Command) -> Callable[[], CommandResult]:
        return lambda: self._begin(command, self._job_for(command))

    def _cmd_initialize(self, config: dict[str, Any]) -> CommandResult:
        return self._begin(Command.initialize, lambda: self._job_initialize(config))

    def _cmd_start(self, run_id: str) -> CommandResult:
        try:
            validate_run_id(run_id)
        except ValueError as exc:
            raise IncompleteCommandError(f"argument 'run_id': {exc}") from exc
        return self._begin(Command.start, lambda: self._job_start(run_id))

    def _cmd_reconfigure(self, partial: dict[str, Any]) -> CommandResult:
        return self._begin(Command.reconfigure, lambda: self._job_reconfigure(partial))

    def _cmd_shutdown(self) -> CommandResult:
        self.log.log(STATUS, "shutdown requested")
        threading.Timer(0.1, self.request_shutdown).start()  # let the reply go out first
        return CommandResult("Shutting down")

    def _cmd_interrupt(self) -> CommandResult:
        if not self.interrupt("interrupt requested by command"):
            raise InvalidStateError(f"Command '_interrupt' not allowed in state {self.state.name}")
        return CommandResult("transitioning", Command.interrupt.value)

    def _cmd_failure(self) -> CommandResult:
        self.fail("failure requested by command")
        return CommandResult("Failed on request")

    # ------------------------------------------------------------------------------------------
    # transitions
    # ------------------------------------------------------------------------------------------
    def _begin(self, command: Command, job: Callable[[], str | None]) -> CommandResult:
        before = self.state
        transitional = self.fsm.begin(command)
        if command in (Command.stop, Command.interrupt):
            self._stop_event.set()
        self._worker.submit(self._run_job, command, before, transitional, job)
        return CommandResult("transitioning", command.value)

    def _job_for(self, command: Command) -> Callable[[], str | None]:
        jobs: dict[Command, Callable[[], str | None]] = {
            Command.launch: self._job_launch,
            Command.land: self._job_land,
            Command.stop: self._job_stop,
            Command.interrupt: self._job_interrupt,
        }
        return jobs[command]

    def _run_job(
        self, command: Command, before: State, transitional: State, job: Callable[[], str | None]
    ) -> None:
        if self.state is not transitional:
            return  # failed before the job could begin
        try:
            self.autonomy.await_conditions(command)
            if self.state is not transitional:
                return  # failed while waiting for the peers
            status = job()
        except Exception as exc:
            self.fail(_reason(exc), exc)
            return
        if self.state is not transitional:
            return  # failed or interrupted meanwhile
        if command is Command.start:
            default = f"Run {self.run_id} started"
        else:
            default = _DEFAULT_STATUS[command].format(
                before=before.name, reason=self._interrupt_reason
            )
        # Set before completing, so the extrasystole of the new state carries this status.
        self._set_transition_status(status, default)
        try:
            self.fsm.complete()
        except InvalidStateError:
            return  # failed at this very moment
        if command is Command.start:
            self._run_loop()

    def _set_transition_status(self, hook_status: str | None, default: str) -> None:
        text = hook_status if isinstance(hook_status, str) and hook_status else default
        self._status = text

    def _hook(self, name: str, *args: Any) -> str | None:
        try:
            result = getattr(self, name)(*args)
        except HookError:
            raise
        except Exception as exc:
            raise HookError(name, exc) from exc
        return result if isinstance(result, str) else None

    def _job_initialize(self, raw: dict[str, Any]) -> str | None:
        data = resolve_env(normalize_framework_keys(raw), os.environ)
        config = Configuration(data)
        framework = FrameworkConfig.from_config(
            config, own_name=self.canonical_name, data=self.handles_data
        )
        self.framework = framework
        self.role = framework.role
        self.autonomy.configure(framework)
        if self._heartbeat is not None:
            self._heartbeat.max_interval_s = framework.max_heartbeat_interval
        self._framework_initialize(config)
        status = self._hook("do_initializing", config)
        self.config = config
        unused = config.unused_keys()
        if unused:
            self.log.warning("unused configuration keys: %s", ", ".join(unused))
            base = status or "Initialized"
            status = f"{base} ({len(unused)} unused keys: {', '.join(unused)})"
        return status

    def _job_launch(self) -> str | None:
        self._framework_launch()
        return self._hook("do_launching")

    def _job_land(self) -> str | None:
        status = self._hook("do_landing")
        self._framework_land()
        return status

    def _job_reconfigure(self, partial: dict[str, Any]) -> str | None:
        data = resolve_env(normalize_framework_keys(partial), os.environ)
        self.config.apply_partial(data)
        return self._hook("do_reconfigure", Configuration(data))

    def _job_start(self, run_id: str) -> str | None:
        self._stop_event.clear()
        self.run_id = run_id
        self.run_condition = RunCondition.GOOD
        self.metrics.publish_now("RUN_ID", run_id)
        status = self._hook("do_starting", run_id)
        self._framework_start(run_id)
        return status

    def _run_loop(self) -> None:
        """Run ``do_run`` in the worker thread until it returns; a failure goes to ERROR."""
        try:
            status = self._hook("do_run", self.run_id)
        except Exception as exc:
            if isinstance(_original(exc), SendingStoppedError):
                return  # an interrupt stopped the data sending while do_run waited for room
            if self.state is not State.ERROR:  # else a consequence of the failure: keep its status
                self.fail(_reason(exc), exc)
            return
        if status and self.state is State.RUN:
            self._status = status  # after stop, interrupt or failure their own status wins

    def _job_stop(self) -> str | None:
        self._framework_stop()
        status = self._hook("do_stopping")
        self._framework_stopped(self.run_condition)
        return status

    def _job_interrupt(self) -> str | None:
        was_running = self.interrupted_from is State.RUN
        if was_running:
            self.run_condition |= RunCondition.INTERRUPTED
            self._framework_stop()
        status = self._hook("do_interrupting")
        if was_running:
            self._framework_stopped(self.run_condition)
        self._framework_land()
        return status

    # --- autonomous transitions ---------------------------------------------------------------
    def interrupt(self, reason: str) -> bool:
        """Go ORBIT/RUN -> interrupting -> SAFE; returns False if not in ORBIT or RUN."""
        state = self.state
        if state not in (State.ORBIT, State.RUN):
            return False
        try:
            self.interrupted_from = state
            self._interrupt_reason = reason  # read by the job, so set before it can run
            self._begin(Command.interrupt, self._job_interrupt)
        except InvalidStateError:
            return False
        try:
            self._framework_interrupting()
        except Exception:
            self.log.exception("framework reaction to the interrupt failed")
        self.log.warning("interrupting: %s", reason)
        return True

    def fail(self, reason: str, error: BaseException | None = None) -> None:
        """Go to ERROR from any state with ``reason`` as status (thread-safe)."""
        previous = self.state
        self._status = reason
        self._stop_event.set()
        self.fsm.fail()
        if error is not None and not isinstance(error, (ConfigError, TransitionError)):
            self.log.critical("%s", reason, exc_info=_original(error))
        else:
            self.log.critical("%s", reason)
        try:
            self._framework_failure(previous)
        except Exception:
            self.log.exception("framework clean-up after failure failed")
        try:
            self.do_failure()
        except Exception:
            self.log.exception("do_failure raised")

    def _on_framework_error(self, exc: BaseException) -> None:
        self.fail(f"{type(exc).__name__} in framework: {exc}", exc)

    # --- framework extension points for transmitters and receivers -----------------------------
    def _framework_initialize(self, config: Configuration) -> None:
        """Read framework sections of the configuration (before ``do_initializing``)."""

    def _framework_launch(self) -> None:
        """Framework work before ``do_launching``."""

    def _framework_land(self) -> None:
        """Framework work after ``do_landing``."""

    def _framework_start(self, run_id: str) -> None:
        """Framework work after ``do_starting``, before entering RUN (e.g. send the BOR)."""

    def _framework_interrupting(self) -> None:
        """Called by the interrupting thread once ``interrupting`` began (e.g. unblock sends)."""

    def _framework_stop(self) -> None:
        """Framework work after ``do_run`` returned, before ``do_stopping``."""

    def _framework_stopped(self, condition: RunCondition) -> None:
        """Framework work after ``do_stopping`` (e.g. send the EOR)."""

    def _framework_failure(self, previous: State) -> None:
        """Framework clean-up on entering ERROR."""

    # ------------------------------------------------------------------------------------------
    # state reporting
    # ------------------------------------------------------------------------------------------
    def _on_state_change(self, old: State, new: State) -> None:
        self._last_changed = datetime.now(timezone.utc)
        self.log.getChild("fsm").info("state %s -> %s", old.name, new.name)
        if self._heartbeat is not None:
            self._heartbeat.extrasystole(HeartbeatState(int(new), self.role.flags, self._status))
        self.metrics.publish_now("STATE", new.name)
        self.autonomy.state_changed()

    def _heartbeat_state(self) -> HeartbeatState:
        return HeartbeatState(int(self.state), self.role.flags, self._status)

    def _on_peer_events(self, events: list[PeerEvent]) -> None:
        self.autonomy.on_peer_events(events)

    def _log_topics(self) -> dict[str, str]:
        return {
            self.type_name.upper(): "messages of the satellite",
            "FSM": "state changes",
            "AUTONOMY": "heartbeat and role reactions",
            "DATA": "data transmission",
            "MONITORING": "metric sampling problems",
        }

    def wait_for_state(self, state: State, timeout: float) -> bool:
        """Block until the satellite is in ``state`` (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state is state:
                return True
            self.autonomy.wait_change(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.state is state


_DEFAULT_STATUS: dict[Command, str] = {
    Command.initialize: "Initialized",
    Command.launch: "Launched",
    Command.land: "Landed",
    Command.stop: "Run stopped",
    Command.reconfigure: "Reconfigured",
    Command.interrupt: "Interrupted in {before}: {reason}",
    Command.start: "Running",
}


def _text_result(fn: Callable[[], str]) -> Callable[[], CommandResult]:
    return lambda: CommandResult(fn())


def _original(exc: BaseException) -> BaseException:
    return exc.error if isinstance(exc, HookError) else exc


def _reason(exc: BaseException) -> str:
    """Status text for a failed transition: ``<ExceptionType> in <hook>: <message>``."""
    if isinstance(exc, HookError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return f"Configuration error: {exc}"
    return f"{type(exc).__name__}: {exc}"
