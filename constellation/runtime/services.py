"""Runtime: a satellite's service set — event loop, sockets and discovery; open, announce, close.

:meth:`ServiceSet.open` starts the event loop and binds the monitoring publisher, heartbeat
sender and receiver and the command server, all served by that loop; :meth:`ServiceSet.announce`
makes them known (the control service last, so a controller that finds it finds the others);
:meth:`ServiceSet.close` withdraws the announcements, closes the sockets and stops the loop.
The set knows nothing of states or hooks: it gets what it serves as callables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import zmq

from constellation.core.environment import ProcessSettings
from constellation.core.heartbeat_tracker import PeerEvent
from constellation.errors import BindError, DuplicateNameError
from constellation.net.command_server import CommandServer, RequestHandler
from constellation.net.discovery import Discovery, DiscoveryEvent, ServiceId, make_discovery
from constellation.net.heartbeat import (
    HeartbeatReceiver,
    HeartbeatSender,
    HeartbeatState,
    HeartbeatTiming,
)
from constellation.net.interfaces import NetworkScope
from constellation.net.loop import EventLoop
from constellation.net.monitoring import TRACE, CMDPLogHandler, MonitoringPublisher

__all__ = ["ServiceHandlers", "ServicePart", "ServiceSet", "standard_log_topics"]

_T = TypeVar("_T")


class ServicePart(Generic[_T]):
    """A read-only attribute of the owner that forwards to ``owner.services.<name>``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name.lstrip("_")

    def __get__(self, obj: Any, objtype: type | None = None) -> _T | None:
        return cast("_T | None", getattr(obj.services, self._name))


def standard_log_topics(type_name: str) -> dict[str, str]:
    """The log topics every satellite offers (``type_name``: its own messages)."""
    return {
        type_name.upper(): "messages of the satellite",
        "FSM": "state changes",
        "AUTONOMY": "heartbeat and role reactions",
        "DATA": "data transmission",
        "MONITORING": "metric sampling problems",
    }


@dataclass(frozen=True)
class ServiceHandlers:
    """What the services serve: the satellite's side of every socket."""

    handle_request: RequestHandler
    heartbeat_state: Callable[[], HeartbeatState]
    on_peer_events: Callable[[list[PeerEvent]], None]
    metric_topics: Callable[[], dict[str, str]]
    on_loop_error: Callable[[BaseException], None]


class ServiceSet:
    """The loop-served sockets and the discovery of one satellite."""

    def __init__(
        self,
        canonical_name: str,
        group: str,
        scope: NetworkScope,
        ports: dict[str, int],
        discovery_kind: str,
        name_check: float = 0.0,
        settings: ProcessSettings | None = None,
    ) -> None:
        self.canonical_name = canonical_name
        settings = settings or ProcessSettings()
        self._timing = HeartbeatTiming(scale=settings.heartbeat_scale)
        self._max_message_size = settings.max_message_size
        self.group = group
        self.scope = scope
        self._ports = dict(ports)
        self._discovery_kind = discovery_kind
        self._name_check = name_check
        self.loop: EventLoop | None = None
        self.monitoring: MonitoringPublisher | None = None
        self.log_handler: CMDPLogHandler | None = None
        self.heartbeat: HeartbeatSender | None = None
        self.heartbeats: HeartbeatReceiver | None = None
        self.command_server: CommandServer | None = None
        self.discovery: Discovery | None = None
        self._logger: logging.Logger | None = None

    def open(self, handlers: ServiceHandlers, logger: logging.Logger, type_name: str) -> None:
        """Start the loop and bind every socket; ``logger``'s records go out over CMDP.

        A port that cannot be bound raises :class:`~constellation.errors.BindError` naming the
        service and port, after everything opened so far was closed again (loop stopped).
        """
        name = self.canonical_name
        loop = self.loop = EventLoop(zmq.Context.instance(), f"{name}-loop")
        loop.on_error = handlers.on_loop_error
        loop.start()
        limit = self._max_message_size
        service = "mon"
        try:
            self.monitoring = MonitoringPublisher(
                loop,
                self.scope,
                name,
                self._ports["mon"],
                log_topics=lambda: standard_log_topics(type_name),
                metric_topics=handlers.metric_topics,
                max_message_size=limit,
            )
            service = "hb"
            self.heartbeat = HeartbeatSender(
                loop,
                self.scope,
                name,
                handlers.heartbeat_state,
                self._ports["hb"],
                timing=self._timing,
                max_message_size=limit,
            )
            service = "cmd"
            self.command_server = CommandServer(
                loop,
                self.scope,
                name,
                handlers.handle_request,
                self._ports["cmd"],
                max_message_size=limit,
            )
        except zmq.ZMQError as exc:
            self._abandon_open()
            raise BindError(service, self._ports[service] or None, _reason(exc)) from None
        self.heartbeats = HeartbeatReceiver(
            loop, name, handlers.on_peer_events, timing=self._timing, max_message_size=limit
        )
        self.log_handler = CMDPLogHandler(self.monitoring, logger.name, type_name)
        logger.addHandler(self.log_handler)
        self._logger = logger
        # Everything down to TRACE reaches the handlers: the CMDP handler sends only what
        # somebody subscribed to, the console handler filters by its own level.
        logger.setLevel(TRACE if logger.level == logging.NOTSET else logger.level)

    def _abandon_open(self) -> None:
        """Close what a failed :meth:`open` had opened; a later :meth:`close` finds nothing."""
        self.close()
        self.monitoring = self.heartbeat = self.heartbeats = self.command_server = None
        self.log_handler = self._logger = self.loop = None

    def announce(self, extra: Callable[[Discovery], None] = lambda discovery: None) -> Discovery:
        """Announce monitoring, heartbeat, ``extra`` services, then control; follow heartbeats.

        With a ``name_check`` time, first ask the group whether the name is taken: raises
        :class:`~constellation.errors.DuplicateNameError` naming the other's address. A data
        socket ``extra`` cannot bind raises :class:`~constellation.errors.BindError`
        (service ``data``) once the announcements are withdrawn.
        """
        assert self.command_server and self.heartbeat and self.monitoring and self.heartbeats
        discovery = make_discovery(
            self._discovery_kind, self.group, self.canonical_name, self.scope
        )
        other = discovery.find_namesake(self._name_check)
        if other is not None:
            discovery.close()
            raise DuplicateNameError(
                f"{self.canonical_name} already runs in group '{self.group}' at {other}: "
                "start this one under another name (-n)"
            )
        self.discovery = discovery
        discovery.announce(ServiceId.MONITORING, self.monitoring.port)
        discovery.announce(ServiceId.HEARTBEAT, self.heartbeat.port)
        try:
            extra(discovery)  # the data role binds its socket here
        except zmq.ZMQError as exc:
            self.discovery = None
            discovery.close()
            raise BindError("data", None, _reason(exc)) from None
        discovery.announce(ServiceId.CONTROL, self.command_server.port)
        discovery.add_listener([ServiceId.HEARTBEAT], self._on_heartbeat_service)
        return discovery

    def _on_heartbeat_service(self, event: DiscoveryEvent, service: Any) -> None:
        receiver = self.heartbeats
        if receiver is None:
            return
        if event is DiscoveryEvent.ADDED:
            receiver.peer_added(service)
        else:
            receiver.peer_removed(service)

    def withdraw(self) -> None:
        """Close the discovery: peers see the services depart."""
        if self.discovery is not None:
            self.discovery.close()

    def close(self) -> None:
        """Close every socket and stop the loop (after :meth:`withdraw`)."""
        for part in (self.command_server, self.heartbeats, self.heartbeat, self.monitoring):
            if part is not None:
                part.close()
        if self.log_handler is not None and self._logger is not None:
            self._logger.removeHandler(self.log_handler)
        if self.loop is not None:
            self.loop.stop()


def _reason(exc: zmq.ZMQError) -> str:
    """The system's words for a failed bind, e.g. "address already in use"."""
    text = zmq.strerror(exc.errno) if exc.errno else str(exc)  # strerror would add the address
    return text[:1].lower() + text[1:]
