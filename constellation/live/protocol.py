"""Pure codec of the live socket: topics, message headers, subscriber reports, compression.

A live message has three frames: a topic (codec letter, lower-cased sender name, ``\\n``), a
msgpack header map (:class:`LiveHeader`) and the payload — the CDTP2 frame exactly as the
receiver got it, or that frame compressed with the codec the topic names. Subscribers send
reports upstream (first byte ``0x02``, then a msgpack map). docs/live.md describes the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from constellation.errors import ConfigError, DecodeError

__all__ = [
    "CODECS",
    "LIVE_VERSION",
    "REPORT_PREFIX",
    "LiveEndpoint",
    "LiveHeader",
    "compress",
    "decode_report",
    "decompress",
    "encode_report",
    "endpoint_from_txt",
    "marker_topic",
    "sender_of_topic",
    "subscription_topic",
    "topic_for",
]

LIVE_VERSION = 1
#: Codec name -> topic letter. ``none`` sends the received bytes unchanged.
CODECS: dict[str, bytes] = {"none": b"r", "lz4": b"l", "zstd": b"z"}
_LETTERS = {v: k for k, v in CODECS.items()}
#: First byte of a subscriber report (subscriptions start with 0x00 / 0x01).
REPORT_PREFIX = b"\x02"
#: Topics starting with this byte are markers: one per subscriber, never published.
MARKER = b"#"
KINDS = ("DATA", "BOR", "EOR")  # index = CDTP2 message type


def check_codec(name: str | None) -> str:
    """The codec ``name`` (None = ``none``); ConfigError naming the choices otherwise."""
    codec = "none" if name is None else str(name).lower()
    if codec not in CODECS:
        raise ConfigError(
            "compression", f"unknown compression {name!r} (use one of: {', '.join(CODECS)})"
        )
    if codec != "none":
        _module(codec)  # import now: a missing package is reported at once
    return codec


def topic_for(codec: str, sender: str) -> bytes:
    """Topic of a message of ``sender`` sent with ``codec``."""
    return CODECS[codec] + sender.lower().encode() + b"\n"


def subscription_topic(codec: str, sender: str | None) -> bytes:
    """Subscription prefix: every sender (None) or one, with ``codec``."""
    return CODECS[codec] if sender is None else topic_for(codec, sender)


def marker_topic(subscriber_id: str) -> bytes:
    """The marker subscription that makes one subscriber countable by the receiver."""
    return MARKER + subscriber_id.encode()


def codec_of_topic(topic: bytes) -> str | None:
    """Codec named by the first byte of a topic or subscription, None if none."""
    return _LETTERS.get(topic[:1])


def sender_of_topic(topic: bytes) -> str | None:
    """Lower-cased sender of a subscription topic; None for "every sender"."""
    body = topic[1:]
    if not body:
        return None
    return body.rstrip(b"\n").decode(errors="replace")


class LiveHeader(NamedTuple):
    """Second frame of a live message.

    ``kind`` is DATA, BOR or EOR; ``first`` and ``count`` the sequence number of the first
    record and the number of records (DATA), ``index`` the position of the first record in the
    sender's part of the run file (H5DataWriter) or None; ``size`` the payload bytes before
    compression; ``replay`` marks a BOR sent again for a subscriber that joined during the run;
    ``time`` when the receiver published the message (seconds since the epoch). A tuple: every
    reader decodes one per message, so it is cheap to build.
    """

    kind: str
    sender: str
    run_id: str
    first: int = 0
    count: int = 0
    index: int | None = None
    codec: str = "none"
    size: int = 0
    replay: bool = False
    time: float = 0.0

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(
            {
                "v": LIVE_VERSION,
                "kind": self.kind,
                "sender": self.sender,
                "run": self.run_id,
                "first": self.first,
                "count": self.count,
                "index": self.index,
                "codec": self.codec,
                "size": self.size,
                "replay": self.replay,
                "t": self.time,
            }
        )
        return packed

    @classmethod
    def decode(cls, raw: Any) -> LiveHeader:
        """Decode a header frame; DecodeError for anything that is not one."""
        try:
            value = msgpack.unpackb(raw, raw=False)
        except Exception as exc:
            raise DecodeError(f"live header: invalid msgpack data ({exc})") from exc
        if type(value) is not dict or value.get("v") != LIVE_VERSION:
            raise DecodeError("live header: not a version 1 header map")
        try:
            header = cls(
                value["kind"],
                value["sender"],
                value["run"],
                value["first"],
                value["count"],
                value["index"],
                value["codec"],
                value["size"],
                value["replay"],
                value["t"],
            )
        except KeyError as exc:
            raise DecodeError(f"live header: missing key {exc}") from None
        header._check()
        return header

    def _check(self) -> None:
        if self.kind not in KINDS:
            raise DecodeError(f"live header: unknown kind {self.kind!r}")
        if self.codec not in CODECS:
            raise DecodeError(f"live header: unknown codec {self.codec!r}")
        if type(self.sender) is not str or type(self.run_id) is not str:
            raise DecodeError("live header: sender or run_id is not a str")
        for key, value in (("first", self.first), ("count", self.count), ("size", self.size)):
            if type(value) is not int or value < 0:
                raise DecodeError(f"live header: {key} is not a uint")
        if self.index is not None and (type(self.index) is not int or self.index < 0):
            raise DecodeError("live header: index is not a uint")
        if type(self.time) not in (int, float) or type(self.replay) is not bool:
            raise DecodeError("live header: bad time or replay flag")


@dataclass(frozen=True)
class LiveEndpoint:
    """The live service of one receiver: its canonical name and the two socket addresses."""

    receiver: str
    lossy: str
    lossless: str


def endpoint_from_txt(
    group: str, properties: dict[str, str], address: str, port: int
) -> LiveEndpoint | None:
    """The endpoint an mDNS instance of the live service describes, None if not of ``group``.

    ``properties`` is the instance's TXT record (``group``, ``name``, ``lossless``),
    ``address`` the address to connect to and ``port`` the instance's port (the lossy socket).
    """
    name = properties.get("name", "")
    lossless = properties.get("lossless", "")
    if not name or properties.get("group", "").lower() != group.lower():
        return None
    if not lossless.isdigit() or not 0 < int(lossless) < 65536 or not 0 < port < 65536:
        return None
    return LiveEndpoint(name, f"tcp://{address}:{port}", f"tcp://{address}:{int(lossless)}")


def encode_report(subscriber_id: str, received: int, dropped: int) -> bytes:
    """An upstream report of one subscriber's totals."""
    body: bytes = msgpack.packb({"id": subscriber_id, "received": received, "dropped": dropped})
    return REPORT_PREFIX + body


def decode_report(raw: bytes) -> tuple[str, int, int]:
    """(subscriber id, received, dropped) of a report; DecodeError otherwise."""
    if raw[:1] != REPORT_PREFIX:
        raise DecodeError("live report: wrong first byte")
    try:
        value = msgpack.unpackb(raw[1:], raw=False)
        ident, received, dropped = value["id"], value["received"], value["dropped"]
    except Exception as exc:
        raise DecodeError(f"live report: {exc}") from None
    if type(ident) is not str or type(received) is not int or type(dropped) is not int:
        raise DecodeError("live report: wrong value types")
    if received < 0 or dropped < 0:
        raise DecodeError("live report: negative counts")
    return ident, received, dropped


def _module(codec: str) -> Any:
    try:
        if codec == "lz4":
            import lz4.frame

            return lz4.frame
        import zstandard

        return zstandard
    except ImportError as exc:
        raise ConfigError(
            "compression",
            f"compression {codec!r} needs its package: pip install constellation-py[live]",
        ) from exc


def compress(codec: str, data: Any) -> bytes:
    """``data`` compressed with ``codec`` (``none`` returns it as bytes-like, unchanged)."""
    if codec == "none":
        return data  # type: ignore[no-any-return]
    module = _module(codec)
    if codec == "lz4":
        return module.compress(data)  # type: ignore[no-any-return]
    return module.ZstdCompressor(level=1).compress(data)  # type: ignore[no-any-return]


def decompress(codec: str, data: Any, size: int) -> Any:
    """The payload before compression; DecodeError when it does not decompress to ``size``."""
    if codec == "none":
        return data
    module = _module(codec)
    try:
        if codec == "lz4":
            out = module.decompress(bytes(data))
        else:
            out = module.ZstdDecompressor().decompress(bytes(data), max_output_size=size)
    except Exception as exc:
        raise DecodeError(f"live payload: {codec} data does not decompress ({exc})") from None
    if len(out) != size:
        raise DecodeError(f"live payload: {len(out)} bytes after {codec}, header says {size}")
    return out
