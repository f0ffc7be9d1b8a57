"""Controller layer: waiting for satellites to appear and to reach a state.

:class:`Waits` is a part of :class:`~controller.controller.Controller` (a base class: it uses the
controller's lock, state view, handles and discovery). ``await_state`` asks every target for its
state (``get_state``) until all agree, raises :class:`~constellation.errors.TransitionError` as
soon as one is in ERROR, and then lets the heartbeat view catch up briefly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from constellation.errors import TransitionError
from constellation.net.discovery import ServiceId

if TYPE_CHECKING:
    from controller.handles import SatelliteHandle
    from controller.state_view import Change, StateView

__all__ = ["Waits"]


class Waits:
    """``await_satellites``, ``await_n_satellites`` and ``await_state`` of a controller."""

    # provided by the controller
    timeout: float
    discovery: Any
    _lock: threading.RLock
    _changed: threading.Condition
    _handles: dict[str, SatelliteHandle]
    _view: StateView

    @property
    def states(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def statuses(self) -> dict[str, str]:
        raise NotImplementedError

    def _targets(self, targets: Iterable[str] | None) -> dict[str, SatelliteHandle]:
        raise NotImplementedError

    def _apply(self, changes: list[Change]) -> None:
        raise NotImplementedError

    def _view_version(self, name: str) -> int:
        raise NotImplementedError

    def await_satellites(self, names: Iterable[str], timeout: float = 20.0) -> None:
        """Block until every named satellite (``Type.Name``) was discovered."""
        wanted = {n.lower() for n in names}
        self._wait(
            lambda: wanted <= {n.lower() for n in self._handles},
            timeout,
            lambda: f"satellites not found: {sorted(wanted - {n.lower() for n in self._handles})}",
            self._ask_again,
        )

    def await_n_satellites(self, n: int, timeout: float = 20.0) -> None:
        """Block until at least ``n`` satellites were discovered."""
        self._wait(
            lambda: len(self._handles) >= n,
            timeout,
            lambda: f"only {len(self._handles)} of {n} satellites found",
            self._ask_again,
        )

    def _ask_again(self) -> None:
        """While waiting for satellites: ask peers to announce again (CHIRP beacons can be lost;
        a no-op with mDNS, which repeats its queries itself)."""
        for service in (ServiceId.CONTROL, ServiceId.HEARTBEAT):
            self.discovery.request(service)

    def _wait(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        why: Callable[[], str],
        every_second: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 1.0
        with self._changed:
            while not predicate():
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    raise TimeoutError(why())
                if every_second is not None and now >= next_tick:
                    next_tick = now + 1.0
                    every_second()
                self._changed.wait(min(remaining, 0.5))

    def await_state(
        self, state: str, timeout: float = 30.0, targets: Iterable[str] | None = None
    ) -> None:
        """Block until all (target) satellites are in ``state``.

        Raises :class:`TransitionError` as soon as one is in ERROR (naming it and its status),
        and :class:`TimeoutError` listing the satellites that did not get there in time.
        """
        wanted = state.upper()
        names = list(self._targets(targets))
        deadline = time.monotonic() + timeout
        confirmed: set[str] = set()
        while True:
            for name in names:
                if name in confirmed:
                    continue
                current = self._poll_state(name)
                if current == wanted:
                    confirmed.add(name)
                elif current in ("ERROR", "DEAD") and wanted not in ("ERROR", "DEAD"):
                    status = self._poll_status(name)
                    raise TransitionError(f"{name} is in {current}: {status}")
            if len(confirmed) == len(names):
                self._settle_view(names, wanted, deadline)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = {n: self.states.get(n, "?") for n in names if n not in confirmed}
                raise TimeoutError(f"not in {wanted} after {timeout:g} s: {missing}")
            with self._changed:
                self._changed.wait(min(remaining, 0.1))

    def _settle_view(self, names: list[str], state: str, deadline: float) -> None:
        """After ``get_state`` confirmed ``state``, let the heartbeat view catch up with it.

        Heartbeats are the view's source; their extrasystoles arrive within milliseconds, but
        may be overtaken by a command reply. Wait for them briefly (so ``states`` agrees when
        ``await_state`` returns); a satellite whose heartbeats do not confirm in time is set
        from the answer.
        """
        grace = time.monotonic() + min(1.0, max(0.1, deadline - time.monotonic()))
        lagging = names
        with self._changed:
            while True:
                lagging = [n for n in names if self._view.states().get(n) != state]
                remaining = grace - time.monotonic()
                if not lagging or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.05))
        with self._lock:
            for name in lagging:
                self._apply(self._view.confirm(name, state, time.monotonic()))

    def _poll_state(self, name: str, joined: bool = False) -> str:
        """Ask ``name`` for its state; the answer enters the view unless it changed meanwhile.

        It fills the view when no heartbeat did yet, and replaces ``DEAD`` once a satellite
        ``joined`` (again: restarted under the same name after it was declared dead or left).
        """
        handle = self._handles.get(name)
        if handle is None or (not joined and self.states.get(name) == "DEAD"):
            return "DEAD"  # departed, or silent: do not wait for a command timeout
        version = self._view_version(name)
        try:
            reply = handle.command("get_state", timeout=self.timeout)
        except TimeoutError:
            return self.states.get(name, "?")
        if reply.ok:
            with self._lock:  # enters the view only if it did not change meanwhile
                changes = self._view.answered(
                    name, reply.verb, version, time.monotonic(), rejoined=joined
                )
                self._apply(changes)
            return reply.verb
        return self.states.get(name, "?")

    def _poll_status(self, name: str) -> str:
        handle = self._handles.get(name)
        if handle is None:
            return self.statuses.get(name, "left the group")
        try:
            return handle.command("get_status", timeout=self.timeout).verb
        except TimeoutError:
            return self.statuses.get(name, "?")
