"""Assembly: the live service of a receiver satellite — its tap, command, metrics and timing.

:class:`ReceiverLive` is what a :class:`~constellation.receiver.ReceiverSatellite` holds. The
receiver calls :meth:`~ReceiverLive.accept` for every BOR, DATA and EOR message it accepted
(with the received frames) and :meth:`~ReceiverLive.substitute_eor` for an EOR it made up.
Immediately-publishing receivers send them on at once. A writer that publishes only what it
stored (``deferred``, H5DataWriter) gets them queued per sender and calls
:meth:`~ReceiverLive.stored` from its disk thread after each write: the messages then go out
in order, with the index of their first record in the file.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import zmq

from constellation.core.commands import CommandResult, CommandSpec
from constellation.live.tap import LiveTap
from constellation.protocol.cdtp2 import CDTP2Message, CDTPType, make_eor
from constellation.protocol.cdtp2_uniform import UniformMessage

__all__ = ["LIVE_COMMAND", "LIVE_MDNS_TYPE", "ReceiverLive"]

#: The custom command that answers the live endpoints (how CHIRP users find the service).
LIVE_COMMAND = "get_live_endpoint"
#: The DNS-SD type under which a receiver announces its live service over mDNS.
LIVE_MDNS_TYPE = "_cnstln-live._tcp.local."

#: Seconds between two looks at the subscriptions outside the receive loop.
_SERVICE_PERIOD = 0.25
_KINDS = {CDTPType.DATA: "DATA", CDTPType.BOR: "BOR", CDTPType.EOR: "EOR"}
# A queued message of a deferred receiver: kind, payload (None when nobody listened), first
# sequence, record count.
_Pending = tuple[str, Any, int, int]


class ReceiverLive:
    """The live service of one receiver satellite (created in its ``__init__``)."""

    def __init__(self, satellite: Any, deferred: bool = False) -> None:
        self._sat = satellite
        self.deferred = deferred
        self.tap: LiveTap | None = None
        self._context: zmq.Context[Any] | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, deque[_Pending]] = {}
        self._index: dict[str, int] = {}
        self._mdns: Any = None
        satellite.commands.add(
            CommandSpec(
                LIVE_COMMAND,
                self.get_live_endpoint,
                "Endpoints of the live data service: every record this receiver accepted, for "
                "any number of readers (docs/live.md).",
            )
        )
        metrics = satellite.metrics
        metrics.register(
            "LIVE_SUBSCRIBERS", "", "Live data subscribers connected", self._subscribers, 2.0
        )
        metrics.register(
            "LIVE_DROPPED", "", "Records live subscribers reported lost", self._dropped, 2.0
        )

    # --- set-up (satellite start and close) -------------------------------------------------
    def bind(self) -> None:
        """Bind the live sockets (before the satellite's control service is announced)."""
        sat = self._sat
        if self.tap is None:
            # A context of its own: the fan-out to the readers runs in its own ZeroMQ I/O
            # thread, so it never delays the reading of the data sockets.
            self._context = zmq.Context(io_threads=1)
            self.tap = LiveTap(self._context, sat.scope, sat.canonical_name)

    def announce(self, discovery: Any) -> None:
        """Announce the live sockets over mDNS, as a service of this receiver; look at the
        subscriptions periodically (between runs too: joiners, the EORs sent again)."""
        tap = self.tap
        every = getattr(self._sat, "every", None)
        if tap is not None and every is not None:
            every(_SERVICE_PERIOD, self.service)
        mdns = getattr(discovery, "mdns", discovery)
        announce = getattr(mdns, "announce_type", None)
        if tap is None or announce is None:
            return  # CHIRP only: found through the command
        try:
            announce(LIVE_MDNS_TYPE, tap.port, {"lossless": str(tap.lossless_port)})
            self._mdns = mdns
        except Exception as exc:  # the command still works
            self._sat.log.warning("live service not announced over mDNS: %s", exc)

    def close(self) -> None:
        tap, self.tap = self.tap, None
        if tap is not None:
            tap.close()
        context, self._context = self._context, None
        if context is not None:
            context.term()  # the tap's sockets are closed (linger 0): returns at once

    def get_live_endpoint(self) -> CommandResult:
        tap = self.tap
        if tap is None:
            return CommandResult("live service not open", {})
        payload = {
            "port": tap.port,
            "lossless_port": tap.lossless_port,
            "addresses": list(self._sat.scope.announced_addresses()),
        }
        return CommandResult(f"live data on port {tap.port}", payload)

    def _subscribers(self) -> int:
        tap = self.tap
        if tap is None:
            return 0
        tap.service()  # outside runs nobody else looks at the subscriptions
        return tap.subscribers

    def _dropped(self) -> int:
        return self.tap.reported_drops if self.tap is not None else 0

    # --- receive thread ----------------------------------------------------------------------
    def start_run(self) -> None:
        with self._lock:
            self._pending.clear()
            self._index.clear()
        if self.tap is not None:
            self.tap.start_run()

    def service(self) -> None:
        if self.tap is not None:
            self.tap.service()

    def accept(self, message: CDTP2Message | UniformMessage, frames: Any) -> None:
        """``message`` was accepted; ``frames`` are the frames it was received in."""
        tap = self.tap
        if tap is None or not frames:
            return
        kind = _KINDS[message.msg_type]
        first = count = 0
        if isinstance(message, UniformMessage):  # its sequence range, no record built
            first, count = message.batch.first_seq, message.batch.count
        elif kind == "DATA" and message.records:
            records = message.records
            first, count = records[0].sequence, len(records)
        if not self.deferred:
            tap.publish(kind, message.sender, self._sat.run_id, frames[0], first, count)
            return
        payload = frames[0] if (tap.active or kind != "DATA") else None
        with self._lock:
            self._pending.setdefault(message.sender, deque()).append((kind, payload, first, count))

    def substitute_eor(self, sender: str, metadata: dict[str, Any]) -> None:
        """An EOR this receiver made up for ``sender`` (it sent none)."""
        tap = self.tap
        if tap is None:
            return
        payload = make_eor(sender, {}, metadata).encode()[0]
        if not self.deferred:
            tap.publish("EOR", sender, self._sat.run_id, payload)
            return
        with self._lock:
            self._pending.setdefault(sender, deque()).append(("EOR", payload, 0, 0))

    # --- disk thread of a deferred receiver -------------------------------------------------
    def stored(self, sender: str, kind: str, records: int = 0) -> None:
        """``records`` DATA records (or one BOR/EOR) of ``sender`` are stored: publish them."""
        tap = self.tap
        run_id = self._sat.run_id
        with self._lock:
            queue = self._pending.get(sender)
            if not queue:
                return
            ready: list[tuple[_Pending, int]] = []
            if kind != "DATA":
                while queue and queue[0][0] == "DATA" and queue[0][3] == 0:
                    queue.popleft()  # empty DATA messages: nothing to store or publish
                if queue and queue[0][0] == kind:
                    ready.append((queue.popleft(), 0))
            else:
                index = self._index.get(sender, 0)
                while records > 0 and queue and queue[0][0] == "DATA":
                    item = queue.popleft()
                    ready.append((item, index))
                    index += item[3]
                    records -= item[3]
                self._index[sender] = index
        if tap is None:
            return
        for (item_kind, payload, first, count), index in ready:
            if payload is not None:
                stored = index if item_kind == "DATA" else None
                tap.publish(item_kind, sender, run_id, payload, first, count, stored)
