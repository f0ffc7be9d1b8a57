"""I/O layer: CHIRP's name resolver — learns the canonical names behind beacon host ids.

A beacon names its sender only by the MD5 of the lower-cased canonical name. The resolver thread
asks the peer: ``get_name`` over CSCP if it offers control, else the sender field of its first
heartbeat or monitoring notification. A name whose MD5 matches the host id is handed to
:meth:`ChirpDiscovery.learn_name`; a host whose name is not learned within the timeout is given
up (reported under a placeholder by the table).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import zmq

from constellation.core.chirp_table import NAME_PROBE_KINDS
from constellation.errors import DecodeError
from constellation.net.discovery import ServiceId
from constellation.protocol.chirp import name_id
from constellation.protocol.chp1 import CHP1Message
from constellation.protocol.cmdp1 import decode_cmdp1
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

if TYPE_CHECKING:
    from constellation.net.chirp import ChirpDiscovery

__all__ = ["NameResolver"]

log = logging.getLogger("constellation.net.chirp")

_POLL_TIMEOUT: Final = 0.05
_PROBE_TIMEOUT: Final = 1.0
_PROBE_MAX_MESSAGE: Final = 64 * 1024


class _Probe:
    """One attempt to read a peer's canonical name from one of its services (resolver thread)."""

    KINDS: Final = NAME_PROBE_KINDS

    def __init__(self, context: zmq.Context[Any], service: ServiceId, endpoint: str, own: str):
        self.service = service
        self.started = time.monotonic()
        self.answered = False
        kind = zmq.REQ if service is ServiceId.CONTROL else zmq.SUB
        self.sock: zmq.Socket[Any] = context.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, _PROBE_MAX_MESSAGE)
        if service is ServiceId.HEARTBEAT:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        elif service is ServiceId.MONITORING:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"LOG?")  # answered with a notification
        self.sock.connect(endpoint)
        if service is ServiceId.CONTROL:
            request = CSCP1Message(own, CSCPType.REQUEST, "get_name")
            self.sock.send_multipart(request.encode())

    @property
    def expired(self) -> bool:
        """A request without reply is given up (and retried later); subscriptions are kept."""
        return self.service is ServiceId.CONTROL and time.monotonic() - self.started > (
            _PROBE_TIMEOUT
        )

    def names(self) -> list[str]:
        """Candidate names in the messages received so far."""
        found: list[str] = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return found
            if self.service is ServiceId.CONTROL:  # a REQ socket takes exactly one reply
                self.answered = True
            with contextlib.suppress(DecodeError):
                if self.service is ServiceId.CONTROL:
                    reply = CSCP1Message.decode(frames)
                    if reply.msg_type is CSCPType.SUCCESS:
                        found.append(reply.verb)
                    found.append(reply.sender)
                elif self.service is ServiceId.HEARTBEAT:
                    found.append(CHP1Message.decode(frames).sender)
                else:
                    found.append(decode_cmdp1(frames).sender)
            if self.answered:
                return found

    def close(self) -> None:
        self.sock.close(linger=0)


class NameResolver:
    """Thread that learns the canonical names behind the host ids of a :class:`ChirpDiscovery`."""

    def __init__(self, owner: ChirpDiscovery, timeout: float) -> None:
        self._owner = owner
        self._timeout = timeout
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._retry_after: dict[tuple[bytes, str], float] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"chirp-names-{owner.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        context: zmq.Context[Any] = zmq.Context()
        probes: dict[tuple[bytes, str], _Probe] = {}
        try:
            while not self._stop.is_set():
                self._wakeup.clear()
                try:
                    wait = self._step(context, probes)
                    if probes:
                        self._read(probes, wait)
                        continue
                except Exception:  # never let the resolver die; back off and go on
                    log.exception("CHIRP name resolver step failed")
                    wait = _PROBE_TIMEOUT
                self._wakeup.wait(wait)
        finally:
            for probe in probes.values():
                probe.close()
            context.term()

    def _step(self, context: zmq.Context[Any], probes: dict[tuple[bytes, str], _Probe]) -> float:
        """Expire hosts, drop stale probes, open new ones; returns the longest wait allowed."""
        now = time.monotonic()
        work = {}
        for host, (since, services) in self._owner.unresolved().items():
            if now - since >= self._timeout:
                self._owner.give_up(host)
            else:
                work[host] = (since, services)
        for key in list(probes):
            host, endpoint = key
            if probes[key].expired:
                self._retry_after[key] = now + _PROBE_TIMEOUT
            elif host in work and endpoint in work[host][1].values():
                continue
            probes.pop(key).close()
        self._retry_after = {k: t for k, t in self._retry_after.items() if t > now}
        for host, (_, services) in work.items():
            for service in _Probe.KINDS:
                target = services.get(service)
                if target is None:
                    continue
                key = (host, target)
                if key in probes or key in self._retry_after:
                    continue
                try:
                    probes[key] = _Probe(context, service, target, self._owner.name)
                except zmq.ZMQError as exc:
                    log.debug("CHIRP: cannot probe %s for a name: %s", target, exc)
                    self._retry_after[key] = now + _PROBE_TIMEOUT
        deadlines = [since + self._timeout - now for since, _ in work.values()]
        if work:
            deadlines.extend(t - now for t in self._retry_after.values())
        return max(0.001, min([_POLL_TIMEOUT if probes else 3600.0, *deadlines]))

    def _read(self, probes: dict[tuple[bytes, str], _Probe], wait: float) -> None:
        poller = zmq.Poller()
        for probe in probes.values():
            poller.register(probe.sock, zmq.POLLIN)
        ready = dict(poller.poll(int(wait * 1000) + 1))
        for key, probe in list(probes.items()):
            if probe.sock not in ready:
                continue
            try:
                names = probe.names()
            except zmq.ZMQError as exc:
                log.debug("CHIRP name probe of %s failed: %s", key[1], exc)
                names = []
                probe.answered = True
            matching = [name for name in names if name_id(name) == key[0]]
            if matching:
                self._owner.learn_name(matching[0])
            elif probe.answered:  # answered, but not with its name: ask again later
                probes.pop(key).close()
                self._retry_after[key] = time.monotonic() + _PROBE_TIMEOUT
