"""Runtime: the transition runner — a command's job runs in the hook worker, then completes.

``begin(command, job)`` enters the transitional state at once (in the caller's thread, the loop
thread for a CSCP command) and queues the job in the hook worker. The job waits for the peers
of the conditional transition, runs the hooks, sets the status and completes the transition;
an exception fails the satellite with ``<ExceptionType> in <hook>: <message>``. After ``start``
completes, the runner calls ``on_run`` in the same worker (``do_run``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from constellation.core.commands import CommandResult
from constellation.core.fsm import Command, SatelliteFSM
from constellation.core.states import State
from constellation.errors import ConfigError, HookError, InvalidStateError, TransitionError
from constellation.runtime.workers import ActiveCalls, Worker

__all__ = [
    "DEFAULT_STATUS",
    "HookCaller",
    "TransitionRunner",
    "failure_reason",
    "is_expected_failure",
    "original_error",
]

Job = Callable[[], "str | None"]

#: Status after a transition whose hook returned no text (``{before}``, ``{reason}``, ``{run}``).
DEFAULT_STATUS: dict[Command, str] = {
    Command.initialize: "Initialized",
    Command.launch: "Launched",
    Command.land: "Landed",
    Command.stop: "Run stopped",
    Command.reconfigure: "Reconfigured",
    Command.interrupt: "Interrupted in {before}: {reason}",
    Command.start: "Run {run} started",
}


class HookCaller:
    """Calls the user hook ``name`` of ``target``, recorded in ``active`` while it runs.

    Any exception comes out as :class:`HookError` naming the hook; a non-str result is None.
    """

    def __init__(self, target: object, active: ActiveCalls) -> None:
        self._target = target
        self._active = active

    def __call__(self, name: str, *args: Any) -> str | None:
        try:
            with self._active.running(name):
                result = getattr(self._target, name)(*args)
        except HookError:
            raise
        except Exception as exc:
            raise HookError(name, exc) from exc
        return result if isinstance(result, str) else None


class TransitionRunner:
    """Begin transitions and run their jobs in ``worker``, one after the other."""

    def __init__(
        self,
        fsm: SatelliteFSM,
        worker: Worker,
        stop_event: threading.Event,
        *,
        await_conditions: Callable[[Command], None],
        fail: Callable[[str, BaseException | None], None],
        set_status: Callable[[str], None],
        default_status: Callable[[Command, State], str],
        on_run: Callable[[], None],
    ) -> None:
        self._fsm = fsm
        self._worker = worker
        self._stop = stop_event
        self._await_conditions = await_conditions
        self._fail = fail
        self._set_status = set_status
        self._default_status = default_status
        self._on_run = on_run

    def begin(self, command: Command, job: Job) -> CommandResult:
        """Enter the transitional state of ``command`` and queue ``job``.

        Raises :class:`InvalidStateError` if the command is not allowed now.
        """
        before = self._fsm.state
        transitional = self._fsm.begin(command)
        if command in (Command.stop, Command.interrupt):
            self._stop.set()
        self._worker.submit(self._run_job, command, before, transitional, job)
        return CommandResult("transitioning", command.value)

    def _run_job(self, command: Command, before: State, transitional: State, job: Job) -> None:
        if self._fsm.state is not transitional:
            return  # failed before the job could begin
        try:
            self._await_conditions(command)
            if self._fsm.state is not transitional:
                return  # failed while waiting for the peers
            status = job()
        except Exception as exc:
            self._fail(failure_reason(exc), exc)
            return
        if self._fsm.state is not transitional:
            return  # failed or interrupted meanwhile
        # Set before completing, so the extrasystole of the new state carries this status.
        self._set_status(status or self._default_status(command, before))
        try:
            self._fsm.complete()
        except InvalidStateError:
            return  # failed at this very moment
        if command is Command.start:
            self._on_run()


def original_error(exc: BaseException) -> BaseException:
    """The exception a hook raised (unwrapping :class:`HookError`)."""
    return exc.error if isinstance(exc, HookError) else exc


def is_expected_failure(exc: BaseException) -> bool:
    """Configuration and transition errors are reported without a traceback."""
    return isinstance(exc, (ConfigError, TransitionError))


def failure_reason(exc: BaseException) -> str:
    """Status text for a failed transition: ``<ExceptionType> in <hook>: <message>``."""
    if isinstance(exc, HookError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return f"Configuration error: {exc}"
    return f"{type(exc).__name__}: {exc}"
