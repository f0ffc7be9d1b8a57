"""I/O layer: :class:`Streamer`, a live subscriber to every receiver of a group.

One thread per streamer owns the sockets (:class:`~constellation.live.intake.Intake`: one XSUB
per receiver, found by :class:`~constellation.live.locate.LiveLocator`): it moves the messages
into a bounded :class:`~constellation.live.buffer.LiveBuffer` and reports the subscriber's
totals upstream.
:meth:`Streamer.read` takes what is buffered, decodes it and does the exact drop accounting
(:class:`~constellation.live.accounting.SequenceAccount`). docs/live.md has the whole story.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from constellation.errors import DecodeError, UnknownSenderError
from constellation.live.accounting import SenderStats, SequenceAccount
from constellation.live.buffer import BufferItem, LiveBuffer, check_policy
from constellation.live.frame import BOR, EOR, Frame
from constellation.live.intake import Intake
from constellation.live.locate import LiveLocator
from constellation.live.pipe import NumpyPipe
from constellation.live.protocol import check_codec, decompress
from constellation.live.recorded import Replay, file_preface, live_start
from constellation.net.interfaces import NetworkScope
from constellation.protocol.cdtp2 import decode_data_frame, split_bor_eor

__all__ = ["Streamer"]

#: How long the constructor and :meth:`Streamer.update_senders` wait for discovery to find a
#: named sender (transmitters announce their data service when their process starts).
SENDER_WAIT = 3.0


class Streamer:
    """Live records of a group: ``read()`` returns a :class:`Frame` or None on timeout.

    ``senders``: canonical names to follow (None: every sender). ``policy``: ``drop-oldest``
    (default), ``latest`` or ``block`` (lossless, back-pressure up to the transmitters).
    ``buffer``: bytes held here at most. ``compression``: ``lz4`` or ``zstd`` on the wire.
    ``sender_wait``: seconds discovery gets to find every named sender before the constructor
    raises :class:`~constellation.errors.UnknownSenderError` (None: no check, for names that
    may appear later).
    """

    def __init__(
        self,
        group: str,
        senders: Iterable[str] | None = None,
        *,
        interface: str | Iterable[str] | None = None,
        discovery: str = "mdns",
        policy: str = "drop-oldest",
        buffer: int = 4 * 2**20,
        compression: str | None = None,
        sender_wait: float | None = SENDER_WAIT,
    ) -> None:
        self.group = group
        self.policy = check_policy(policy)
        self.codec = check_codec(compression)
        given = None if senders is None else _given(senders)  # an iterable is read once
        self._senders: set[str] | None = None if given is None else set(given)
        self._read_lock = threading.Lock()  # accounts and names: read() and stats
        self._pipes: dict[str, NumpyPipe] = {}
        self._preface: Frame | None = None  # the file part of follow()
        self._accounts: dict[str, SequenceAccount] = {}
        self._names: dict[str, str] = {}  # lower-cased -> canonical, as seen in messages
        self._bad_payloads = 0
        self._buffer = LiveBuffer(policy, buffer)
        self._intake = Intake(
            uuid.uuid4().hex[:12], self._buffer, self.codec, self._senders, self._totals
        )
        self._cv = self._intake.cv  # guards the buffer (read() against the socket thread)
        interfaces = [interface] if isinstance(interface, str) else interface
        scope = NetworkScope.from_interfaces(interfaces)
        intake = self._intake
        try:
            self._locator = LiveLocator(group, scope, discovery, intake.found, intake.gone)
            if given is not None and sender_wait is not None:
                self._check_senders(given, sender_wait)
        except BaseException:  # also a signal's exception: nothing of this streamer is left
            self.close()
            raise

    # --- public API ----------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, SenderStats]:
        """Per sender (canonical name): records received and dropped, last sequence, run."""
        with self._read_lock:
            return {self._names.get(k, k): _copy(a.stats) for k, a in self._accounts.items()}

    @property
    def receivers(self) -> list[str]:
        """Receivers whose live service this streamer is connected to."""
        return self._intake.receivers()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._intake.closed

    @property
    def bad_messages(self) -> int:
        """Messages that were not live messages, and payloads that did not decode (dropped)."""
        return self._intake.bad_messages + self._bad_payloads

    def known_senders(self) -> list[str]:
        """Canonical names of the group's transmitters and of every sender seen."""
        names = {**self._locator.senders(), **self._names}
        return sorted(names.values())

    def update_senders(self, names: Iterable[str] | None) -> None:
        """Follow ``names`` from now on (None: every sender).

        Raises :class:`~constellation.errors.UnknownSenderError` listing the known senders when
        a name is not a transmitter of the group (after waiting briefly for discovery).
        """
        given = None if names is None else _given(names)
        wanted = None if given is None else set(given)
        if given is not None:
            self._check_senders(given, SENDER_WAIT)
        self._senders = wanted
        self._intake.follow(wanted)

    def _check_senders(self, given: dict[str, str], wait: float) -> None:
        """Raise UnknownSenderError unless discovery finds every name within ``wait`` s."""
        missing = self._locator.wait_for_senders(set(given) - self._names.keys(), wait)
        if missing:
            known = ", ".join(self.known_senders()) or "none"
            unknown = ", ".join(sorted(given[m] for m in missing))
            raise UnknownSenderError(
                f"unknown sender(s) {unknown} in group '{self.group}' (known: {known})"
            )

    @staticmethod
    def replay(path: str | os.PathLike[str], speed: float = 1.0, **kwargs: Any) -> Replay:
        """A run file played as if live, with the same ``read()`` API (see :class:`Replay`)."""
        return Replay(path, speed, **kwargs)

    @classmethod
    def follow(
        cls,
        path: str | os.PathLike[str],
        group: str,
        senders: Iterable[str] | None = None,
        *,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> Streamer:
        """A streamer whose first read holds a local run file's records, then continues live.

        The seam is exact: the live stream is subscribed first; the file is read (and re-read
        while the writer flushes) up to the record before the first live one, and live records
        already read from the file are cut off by their sequence numbers.
        """
        streamer = cls(group, senders, **kwargs)
        try:
            streamer._join_file(path, timeout)
        except Exception:
            streamer.close()
            raise
        return streamer

    def _join_file(self, path: str | os.PathLike[str], timeout: float) -> None:
        """Wait for the live start of the file's senders, then read the file up to it."""
        from constellation.reader import open_run

        with open_run(path) as run:
            names = [s.lower() for s in run.senders]
        if self._senders is not None:
            names = [n for n in names if n in self._senders]
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                starts = {n: live_start(self._buffer.items(), n) for n in names}
                if all(v is not None for v in starts.values()) or time.monotonic() > deadline:
                    break
                self._cv.wait(0.05)
        wanted = {n: None if v is None or v < 0 else v - 1 for n, v in starts.items()}
        frame, last, run_id = file_preface(path, wanted, max(0.0, deadline - time.monotonic()))
        with self._read_lock:
            for name, sequence in last.items():
                account = self._accounts.setdefault(name, SequenceAccount())
                account.on_bor(run_id, replayed=False)
                if sequence:
                    account.on_data(1, sequence)  # the file's records count as received
                account.start_after(sequence)
            for sender in frame.records:
                self._names[sender.lower()] = sender
        self._preface = frame

    def read(self, timeout: float | None = None) -> Frame | None:
        """Records and events since the last read; waits up to ``timeout`` s (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        preface, self._preface = self._preface, None
        if preface is not None:
            timeout = deadline = 0.0
        with self._cv:
            while not len(self._buffer):
                if preface is not None:
                    return preface
                if self._intake.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cv.wait(remaining if remaining is not None else 0.5)
            items = self._buffer.take()
            self._cv.notify_all()  # a blocked socket thread may go on
        if preface is None:
            frame = Frame(on_bad=self._bad_message)
        else:
            frame = Frame(preface.records, preface.events, self._bad_message)
        with self._read_lock:  # accounting runs while the socket thread goes on buffering
            for item in items:
                self._deliver(item, frame)
            for name in list(frame):
                pipe = self._pipes.get(name.lower())
                if pipe is not None:
                    pipe.feed(frame[name])  # a pipe's records are decoded now
        return frame

    def pipe(self, sender: str) -> NumpyPipe:
        """A numpy-pipe view of ``sender``'s records (see :class:`NumpyPipe`)."""
        with self._read_lock:
            found = self._pipes.get(sender.lower())
            if found is None:
                found = self._pipes[sender.lower()] = NumpyPipe(self, sender)
            return found

    def close(self) -> None:
        """Stop receiving and free the sockets, threads and buffers."""
        if self._intake.closed:
            return
        self._intake.close()
        locator = getattr(self, "_locator", None)
        if locator is not None:
            locator.close()
        self._intake.join(5)

    def __enter__(self) -> Streamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while not self._intake.closed:
            frame = self.read(0.5)
            if frame is not None:
                yield frame

    # --- read(): decoding and accounting ---------------------------------------------------------
    def _deliver(self, item: BufferItem, frame: Frame) -> None:
        header, payload, receiver = item.payload
        wanted = self._senders
        if wanted is not None and item.sender not in wanted:
            return
        account = self._accounts.get(item.sender)
        if account is None:
            account = self._accounts[item.sender] = SequenceAccount()
        self._names[item.sender] = header.sender
        try:
            if header.kind == "DATA":
                skip = account.on_data(header.first, header.count, header.size)
                if skip < header.count:
                    frame.add_data(header.sender, header, payload, skip)  # decoded on use
                return
            message = decode_data_frame(decompress(header.codec, payload, header.size))
            tags, meta = split_bor_eor(message)
        except DecodeError:
            self._bad_payloads += 1
            return
        if header.kind == "BOR":
            if account.on_bor(header.run_id, header.replay):
                frame.events.append(BOR(header.sender, header.run_id, meta, tags, receiver))
        elif account.in_run and account.stats.run_id == header.run_id:
            records = meta.get("data_records")  # a repeated EOR (replay) is ignored
            account.on_eor(records if type(records) is int else None)
            frame.events.append(EOR(header.sender, header.run_id, meta, tags, receiver))

    def _bad_message(self) -> None:
        self._bad_payloads += 1

    def _totals(self) -> tuple[int, int]:
        """Records received and dropped over every sender (the upstream reports)."""
        with self._read_lock:
            received = sum(a.stats.received for a in self._accounts.values())
            dropped = sum(a.stats.dropped for a in self._accounts.values())
        return received, dropped


def _given(names: Iterable[str]) -> dict[str, str]:
    """Lower-cased -> given spelling of sender names (one name may be a plain string)."""
    if isinstance(names, str):
        names = [names]
    return {str(n).lower(): str(n) for n in names}


def _copy(stats: SenderStats) -> SenderStats:
    return SenderStats(**vars(stats))
