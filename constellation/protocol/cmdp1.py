"""Protocol layer: CMDP v1, the monitoring protocol (logs, metrics, notifications), as a pure codec.

Every message has three frames: the topic (raw upper-case ASCII), the header, the payload.
Topics: ``LOG/<LEVEL>[/<TOPIC>]`` (payload: raw UTF-8 text), ``STAT/<NAME>`` (payload: value,
uint flags, str unit), ``LOG?`` and ``STAT?`` (payload: map of topic → description).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgpack

from constellation.errors import DecodeError, EncodeError
from constellation.protocol.common import (
    Protocol,
    check_type,
    check_uint,
    coerce_time,
    decode_map,
    frames_of,
    pack_header,
    pack_objects,
    unpack_all,
    unpack_header,
    utc_now,
    utf8,
    validate_scalar,
)

__all__ = [
    "LOG_LEVELS",
    "CMDP1Log",
    "CMDP1Message",
    "CMDP1Metric",
    "CMDP1Notification",
    "decode_cmdp1",
]

#: The log levels, lowest first; only these names travel on the wire.
LOG_LEVELS: Final = ("TRACE", "DEBUG", "INFO", "WARNING", "STATUS", "CRITICAL")


def _upper(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, str):
        object.__setattr__(obj, name, value.upper())


def _frames(
    topic: str, sender: str, time: msgpack.Timestamp, tags: dict[str, Any], payload: bytes
) -> list[bytes]:
    header = pack_header(Protocol.CMDP1, sender, time, tags)
    return [utf8(topic, "topic"), header, payload]


@dataclass(frozen=True)
class CMDP1Log:
    """A log message. ``level`` is one of :data:`LOG_LEVELS`; names are upper-cased."""

    sender: str
    level: str
    message: str
    log_topic: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    time: msgpack.Timestamp = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _upper(self, "level")
        _upper(self, "log_topic")
        coerce_time(self)

    @property
    def topic(self) -> str:
        """The topic frame: ``LOG/<LEVEL>`` or ``LOG/<LEVEL>/<TOPIC>``."""
        return f"LOG/{self.level}/{self.log_topic}" if self.log_topic else f"LOG/{self.level}"

    def encode(self) -> list[bytes]:
        """Topic, header and raw UTF-8 message frames."""
        if self.level not in LOG_LEVELS:
            raise EncodeError(f"log level {self.level!r} is not one of {', '.join(LOG_LEVELS)}")
        if not isinstance(self.log_topic, str) or not isinstance(self.message, str):
            raise EncodeError("log_topic and message must be str")
        payload = utf8(self.message, "log message")
        return _frames(self.topic, self.sender, self.time, self.tags, payload)


@dataclass(frozen=True)
class CMDP1Metric:
    """A metric value (nil, bool, int, float, str or timestamp) with its unit."""

    sender: str
    name: str
    value: Any
    unit: str
    tags: dict[str, Any] = field(default_factory=dict)
    time: msgpack.Timestamp = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _upper(self, "name")
        coerce_time(self)

    @property
    def topic(self) -> str:
        """The topic frame: ``STAT/<NAME>``."""
        return f"STAT/{self.name}"

    def encode(self) -> list[bytes]:
        """Topic, header and payload (value, flags 0, unit) frames."""
        if not isinstance(self.name, str) or not self.name:
            raise EncodeError(f"metric name must be a non-empty str, not {self.name!r}")
        if not isinstance(self.unit, str):
            raise EncodeError(f"metric unit must be str, not {type(self.unit).__name__}")
        validate_scalar(self.value, f"metric {self.name}")
        payload = pack_objects(f"metric {self.name}", self.value, 0, self.unit)
        return _frames(self.topic, self.sender, self.time, self.tags, payload)


@dataclass(frozen=True)
class CMDP1Notification:
    """The list of available log topics (``kind="LOG"``) or metrics (``kind="STAT"``)."""

    sender: str
    kind: Literal["LOG", "STAT"]
    topics: dict[str, str]
    tags: dict[str, Any] = field(default_factory=dict)
    time: msgpack.Timestamp = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _upper(self, "kind")
        coerce_time(self)

    @property
    def topic(self) -> str:
        """The topic frame: ``LOG?`` or ``STAT?``."""
        return f"{self.kind}?"

    def encode(self) -> list[bytes]:
        """Topic, header and payload (map topic → description) frames."""
        if self.kind not in ("LOG", "STAT"):
            raise EncodeError(f"notification kind must be LOG or STAT, not {self.kind!r}")
        if not isinstance(self.topics, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.topics.items()
        ):
            raise EncodeError("notification topics must be a dict of str to str")
        payload = pack_objects("notification topics", self.topics)
        return _frames(self.topic, self.sender, self.time, self.tags, payload)


CMDP1Message = CMDP1Log | CMDP1Metric | CMDP1Notification


def _decode_topic(data: memoryview) -> str:
    try:
        topic = str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"CMDP1 topic is not valid UTF-8 ({exc})") from exc
    if topic != topic.upper():
        raise DecodeError(f"CMDP1 topic {topic!r} is not upper case")
    return topic


def decode_cmdp1(frames: Any) -> CMDP1Message:
    """Decode a received CMDP1 message; raises only the DecodeError family."""
    views = frames_of(frames, (3,), "CMDP1 message")
    sender, time, tags = unpack_header(views[1], Protocol.CMDP1, "CMDP1 header")
    topic = _decode_topic(views[0])
    if topic.startswith("LOG/"):
        level, _, log_topic = topic[4:].partition("/")
        if level not in LOG_LEVELS:
            raise DecodeError(f"CMDP1 topic {topic!r}: unknown log level {level!r}")
        if topic.endswith("/"):
            raise DecodeError(f"CMDP1 topic {topic!r}: empty log topic")
        try:
            message = str(views[2], "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"CMDP1 log message is not valid UTF-8 ({exc})") from exc
        return CMDP1Log(sender, level, message, log_topic, tags, time)
    if topic.startswith("STAT/"):
        name = topic[5:]
        if not name:
            raise DecodeError("CMDP1 topic 'STAT/': empty metric name")
        value, flags, unit = unpack_all(views[2], 3, "CMDP1 metric payload")
        if type(value) in (list, dict, bytes):
            raise DecodeError(f"CMDP1 metric {name}: value is not a scalar")
        check_uint(flags, "CMDP1 metric flags")
        check_type(unit, str, "CMDP1 metric unit")
        return CMDP1Metric(sender, name, value, unit, tags, time)
    if topic in ("LOG?", "STAT?"):
        topics = decode_map(views[2], "CMDP1 notification payload")
        if not all(type(v) is str for v in topics.values()):
            raise DecodeError("CMDP1 notification: descriptions must be str")
        kind: Literal["LOG", "STAT"] = "LOG" if topic == "LOG?" else "STAT"
        return CMDP1Notification(sender, kind, topics, tags, time)
    raise DecodeError(f"CMDP1 topic {topic!r} is neither LOG/, STAT/, LOG? nor STAT?")
