"""Runtime: which thread answers a CSCP request.

Standard commands are answered at once in the loop thread (they never block). A *user* command
(declared in ``custom_commands``) is checked in the loop thread — unknown, wrong state or wrong
arguments are answered at once — and then queued in the command worker; its reply, built from
the method's return value, is sent when it completes (the command server replies out of
order). One user command runs at a time; the others wait in arrival order, at most
``max_queued`` of them (one more is answered ERROR, "busy"). The state is checked again when a
queued command begins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future

from constellation.core.commands import CommandRegistry
from constellation.core.states import State
from constellation.errors import CommandError
from constellation.protocol.cscp1 import CSCP1Message, CSCPType
from constellation.runtime.workers import ActiveCalls, Worker

__all__ = ["DEFAULT_MAX_QUEUED", "RequestRouter"]

#: User commands that may wait behind the running one.
DEFAULT_MAX_QUEUED = 16


class RequestRouter:
    """Map a request to its reply now, or to a future reply computed in ``worker``."""

    def __init__(
        self,
        registry: CommandRegistry,
        state: Callable[[], State],
        own_name: str,
        worker: Worker,
        active: ActiveCalls,
        deferred: Iterable[str] = (),
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._registry = registry
        self._state = state
        self._own_name = own_name
        self._worker = worker
        self._active = active
        self._deferred = frozenset(name.lower() for name in deferred)
        self._max_queued = max_queued

    def __call__(self, request: CSCP1Message) -> CSCP1Message | Future[CSCP1Message]:
        verb = request.verb
        deferred = (
            request.msg_type == CSCPType.REQUEST
            and isinstance(verb, str)
            and verb.lower() in self._deferred
        )
        if not deferred or not self._acceptable(request):
            return self._registry.dispatch(request, self._state(), self._own_name)
        if self._worker.pending > self._max_queued:
            text = (
                f"Busy: command '{verb}' not queued, {self._worker.pending} user commands "
                "are running or waiting"
            )
            return CSCP1Message(self._own_name, CSCPType.ERROR, text)
        return self._worker.submit(self._run, request)

    def _acceptable(self, request: CSCP1Message) -> bool:
        """Whether the request passes the checks (else its error is answered at once)."""
        spec = self._registry.get(request.verb)
        if spec is None or not spec.allows(self._state()):
            return False
        try:
            spec.arguments(request.payload)
        except CommandError:
            return False
        return True

    def _run(self, request: CSCP1Message) -> CSCP1Message:
        with self._active.running(f"command '{request.verb}'"):
            return self._registry.dispatch(request, self._state(), self._own_name)
