"""Protocol layer: CDTP v2, the data transmission protocol, as a pure codec (hot path).

A message is one frame of four msgpack objects: identifier, sender, type (DATA/BOR/EOR) and an
array of records ``[uint sequence, map tags, array of bin blocks]``. BOR and EOR carry two
records without blocks: user tags, then the configuration (BOR) or run metadata (EOR).

:func:`encode_data_frame` and :func:`decode_data_frame` are the fast single-frame entry points;
:class:`CDTP2Message` wraps them for the multipart interface shared by all codecs. Blocks of
64 KiB and more are copied into the frame once (joined, not packed); with ``share_blocks`` the
decoder returns them as views of the received frame instead of copies.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack

from constellation.errors import DecodeError, EncodeError
from constellation.protocol.cdtp2_shared import shared_records
from constellation.protocol.common import (
    Protocol,
    check_keys,
    check_type,
    coerce_enum,
    frames_of,
    maps_plainly_valid,
    to_timestamp,
    unpack_prefix,
    validate_wire_map,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray  # annotations only: no numpy import at run time
    from typing_extensions import Buffer

__all__ = [
    "CDTP2Message",
    "CDTPType",
    "DataRecord",
    "decode_data_frame",
    "encode_data_frame",
    "make_bor",
    "make_eor",
    "split_bor_eor",
]

_UINT64_MAX = (1 << 64) - 1


class CDTPType(IntEnum):
    """Type of a CDTP2 message."""

    DATA = 0
    BOR = 1
    EOR = 2


class DataRecord(NamedTuple):
    """One record: sequence number, tag map and data blocks.

    Decoded blocks are ``bytes``. For encoding, blocks may be any buffer: bytes, bytearray,
    memoryview or numpy arrays. Their raw bytes are sent; C-contiguous buffers without an extra
    copy, others after one copy in C order.
    """

    sequence: int
    tags: dict[str, Any]
    blocks: Sequence[Buffer | NDArray[Any]]


_BLOCK_LIST_TYPES: frozenset[type] = frozenset({list, tuple})
_BYTES_TYPES: frozenset[type] = frozenset({bytes, bytearray})


def _as_block(block: object, where: str) -> bytes | bytearray | memoryview:
    """A block msgpack packs as bin: buffers other than bytes/bytearray become flat byte views."""
    if isinstance(block, str):
        raise EncodeError(f"{where}: blocks must be bytes-like, not str")
    try:
        view = memoryview(block)  # type: ignore[arg-type]
    except TypeError:
        raise EncodeError(
            f"{where}: blocks must be bytes-like, not {type(block).__name__}"
        ) from None
    if view.c_contiguous:
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    return view.tobytes()  # not contiguous: one copy in C order


def _block_default(obj: object) -> object:
    """Packer fallback of the data path: other buffers (numpy arrays) are packed as bin."""
    if isinstance(obj, datetime):  # naive datetimes in tags
        return to_timestamp(obj)
    view = memoryview(obj)  # type: ignore[arg-type]
    return view if view.c_contiguous else view.tobytes()


# Types msgpack packs by itself as something other than bin: never valid as a block.
_NOT_BLOCKS = (str, int, float, list, tuple, dict, type(None), datetime, msgpack.Timestamp)


def _records_ok(records: Sequence[Any]) -> bool:
    """Check the common case column by column, every loop in C; False means "look closer".

    True guarantees: every record holds exactly (uint64, dict, list/tuple of blocks), the tags
    pass :func:`validate_wire_map`, and every block is bytes, bytearray, a C-contiguous
    memoryview or another type (numpy arrays) left to :func:`_block_default`. A record type
    msgpack cannot pack makes the packing fail, and the caller then looks record by record.
    """
    try:
        sequences, tags, blocks = zip(*records, strict=True)
    except (TypeError, ValueError):  # not iterable, or not all of length 3
        return False
    if set(map(type, sequences)) != {int} or min(sequences) < 0 or max(sequences) > _UINT64_MAX:
        return False
    if set(map(type, tags)) != {dict} or not set(map(type, blocks)) <= _BLOCK_LIST_TYPES:
        return False
    for kind in set(map(type, chain.from_iterable(blocks))) - _BYTES_TYPES:
        if kind is memoryview:
            views = [b for b in chain.from_iterable(blocks) if type(b) is memoryview]
            if not all(view.c_contiguous for view in views):
                return False
        elif issubclass(kind, _NOT_BLOCKS):
            return False
    filled = list(filter(None, tags))
    return not filled or maps_plainly_valid(filled)


def _checked_records(records: Sequence[DataRecord]) -> list[DataRecord]:
    """Validate records one by one (precise errors); non-bytes blocks become flat views."""
    if not isinstance(records, (list, tuple)):
        raise EncodeError(f"records must be a list of DataRecord, not {type(records).__name__}")
    out: list[DataRecord] = []
    for index, record in enumerate(records):
        try:
            sequence, tags, blocks = record
        except (TypeError, ValueError):
            raise EncodeError(f"records[{index}]: expected a DataRecord") from None
        if type(sequence) is not int or not 0 <= sequence <= _UINT64_MAX:
            raise EncodeError(f"records[{index}]: sequence must be a uint64, not {sequence!r}")
        validate_wire_map(tags, f"records[{index}].tags")
        if isinstance(blocks, (str, bytes, bytearray, memoryview)):
            raise EncodeError(f"records[{index}].blocks: expected a list of blocks")
        try:
            fixed = [
                block
                if type(block) is bytes or type(block) is bytearray
                else _as_block(block, f"records[{index}].blocks[{pos}]")
                for pos, block in enumerate(blocks)
            ]
        except TypeError:
            raise EncodeError(f"records[{index}].blocks: expected a list of blocks") from None
        out.append(DataRecord(sequence, tags, fixed))
    return out


def encode_data_frame(
    sender: str, records: Sequence[DataRecord], msg_type: CDTPType = CDTPType.DATA
) -> bytes:
    """Encode one CDTP2 frame (DATA by default) from a sequence of records.

    Validation of the usual batch (bytes blocks, flat tags) runs column-wise in C; anything
    unusual is checked record by record, so errors name the record, key or block at fault.
    """
    if not isinstance(sender, str):
        raise EncodeError(f"sender must be str, not {type(sender).__name__}")
    if type(msg_type) is not CDTPType:
        try:
            msg_type = CDTPType(msg_type)
        except ValueError:
            raise EncodeError(f"unknown CDTP2 message type {msg_type!r}") from None
    fast = isinstance(records, (list, tuple)) and _records_ok(records)
    try:
        return _pack_frame(sender, msg_type, records if fast else _checked_records(records))
    except _PACK_ERRORS as exc:
        if not fast:
            raise EncodeError(f"cannot encode CDTP2 message: {exc}") from exc
    try:  # an unusual record type: the record-by-record check names or converts it
        return _pack_frame(sender, msg_type, _checked_records(records))
    except _PACK_ERRORS as exc:
        raise EncodeError(f"cannot encode CDTP2 message: {exc}") from exc


_PACK_ERRORS = (TypeError, ValueError, OverflowError, BufferError)


#: Blocks of at least this size are joined into the frame instead of going through the packer.
_JOIN_MIN_BLOCK = 64 * 1024
#: Batches of at most this many records are checked for such blocks.
_JOIN_MAX_RECORDS = 64
_BIN32 = struct.Struct(">BI")


def block_packer(autoreset: bool = True) -> msgpack.Packer:
    """A new packer with the options of the data path (the one way records are packed)."""
    return msgpack.Packer(
        use_bin_type=True, datetime=True, default=_block_default, autoreset=autoreset
    )


def _pack_frame(sender: str, msg_type: CDTPType, records: Sequence[DataRecord]) -> bytes:
    pk = block_packer(autoreset=False)
    pk.pack(Protocol.CDTP2.value)
    pk.pack(sender)
    pk.pack(int(msg_type))
    if len(records) <= _JOIN_MAX_RECORDS and _has_large_block(records):
        return _pack_joined(pk, records)
    pk.pack(records)  # DataRecords are tuples: each packs as an array of 3
    frame: bytes = pk.bytes()
    return frame


def _has_large_block(records: Sequence[DataRecord]) -> bool:
    return any(_nbytes(block) >= _JOIN_MIN_BLOCK for record in records for block in record[2])


def _nbytes(block: object) -> int:
    if type(block) is bytes or type(block) is bytearray:
        return len(block)
    return memoryview(block).nbytes  # type: ignore[arg-type]


def _pack_joined(pk: msgpack.Packer, records: Sequence[DataRecord]) -> bytes:
    """The same bytes as packing ``records``, with large blocks copied once (by the join).

    The packer copies every block into its growing buffer and ``bytes()`` copies the result
    again; joining the packed pieces with the raw large blocks copies those only once.
    """
    parts: list[Any] = []
    pk.pack_array_header(len(records))
    for sequence, tags, blocks in records:
        pk.pack_array_header(3)
        pk.pack(sequence)
        pk.pack(tags)
        pk.pack_array_header(len(blocks))
        for block in blocks:
            view = block if type(block) is bytes else _as_block(block, "block")
            size = len(view)
            if size < _JOIN_MIN_BLOCK:
                pk.pack(view)
                continue
            if size > 0xFFFFFFFF:
                raise ValueError(f"block of {size} bytes is too large")
            parts.append(pk.bytes())
            pk.reset()
            parts.append(_BIN32.pack(0xC6, size))  # bin 32, as msgpack packs >= 64 KiB
            parts.append(view)
    parts.append(pk.bytes())
    return b"".join(parts)


def _bad_record(index: int, problem: str) -> DecodeError:
    return DecodeError(f"CDTP2 record {index}: {problem}")


def _decoded_ok(raw: list[Any]) -> bool:
    """Column-wise check of decoded records, every loop in C; False means "look closer".

    Items are not type-checked themselves: any decoded object other than an array that yields
    three elements (a 3-key map, a 3-char str, 3 bytes of bin) fails the column checks.
    """
    try:
        sequences, tags, blocks = zip(*raw, strict=True)
    except (TypeError, ValueError):  # not iterable, or not all of length 3
        return False
    if set(map(type, sequences)) != {int} or min(sequences) < 0:
        return False
    if set(map(type, tags)) != {dict} or set(map(type, blocks)) != {list}:
        return False
    if not set(map(type, chain.from_iterable(blocks))) <= {bytes}:
        return False
    filled = list(filter(None, tags))
    if filled:
        if set(map(type, chain.from_iterable(filled))) != {str}:
            return False
        values = set(map(type, chain.from_iterable(map(dict.values, filled))))
        if dict in values or list in values:
            return False  # nested maps: keys checked record by record
    return True


def _records_of(raw: Any) -> list[DataRecord]:
    """Check decoded record arrays and turn them into DataRecords."""
    if type(raw) is not list:
        raise DecodeError(f"CDTP2 records: expected an array, got {type(raw).__name__}")
    if not raw:
        return []
    if not _decoded_ok(raw):
        _check_decoded(raw)
    return list(map(tuple.__new__, repeat(DataRecord, len(raw)), raw))


def _check_decoded(raw: list[Any]) -> None:
    """Record-by-record check of decoded records; raises DecodeError naming the record."""
    for index, item in enumerate(raw):
        if type(item) is not list or len(item) != 3:
            raise _bad_record(index, "expected an array of 3 elements")
        sequence, tags, blocks = item
        if type(sequence) is not int or sequence < 0:
            raise _bad_record(index, f"sequence number {sequence!r} is not a uint")
        if type(tags) is not dict:
            raise _bad_record(index, f"tags are a {type(tags).__name__}, not a map")
        check_keys(tags, f"CDTP2 record {index} tags")
        if type(blocks) is not list:
            raise _bad_record(index, "blocks are not an array")
        for block in blocks:
            if type(block) is not bytes:
                raise _bad_record(index, f"block of type {type(block).__name__} is not bin")


def decode_data_frame(frame: Any, *, share_blocks: bool = False) -> CDTP2Message:
    """Decode one CDTP2 frame; raises only the DecodeError family.

    With ``share_blocks``, blocks of at least 64 KiB in a frame of few large records are
    returned as read-only memoryviews of ``frame`` instead of ``bytes`` copies (zero copy; the
    views keep the frame alive). Everything else decodes exactly as without it.
    """
    (view,) = frames_of((frame,), (1,), "CDTP2 message")
    (_, sender, raw_type), end = unpack_prefix(view, 3, Protocol.CDTP2, "CDTP2 message", 3)
    check_type(sender, str, "CDTP2 sender")
    if type(raw_type) is not int or not 0 <= raw_type <= 2:
        raise DecodeError(f"CDTP2 message type {raw_type!r} is unknown")
    if share_blocks and len(view) - end >= _JOIN_MIN_BLOCK:
        shared = shared_records(view, end, _JOIN_MIN_BLOCK, DataRecord)
        if shared is not None:
            return CDTP2Message(sender, CDTPType(raw_type), shared)
    try:
        raw = msgpack.unpackb(view[end:], raw=False, timestamp=3, strict_map_key=True)
    except Exception as exc:
        raise DecodeError(f"CDTP2 records: invalid msgpack data ({exc})") from exc
    return CDTP2Message(sender, CDTPType(raw_type), _records_of(raw))


@dataclass(frozen=True)
class CDTP2Message:
    """One CDTP2 message: sender, type and records."""

    sender: str
    msg_type: CDTPType
    records: Sequence[DataRecord]

    def __post_init__(self) -> None:
        coerce_enum(self, "msg_type", CDTPType)

    def encode(self) -> list[bytes]:
        """The single frame of this message."""
        return [encode_data_frame(self.sender, self.records, self.msg_type)]

    @classmethod
    def decode(cls, frames: Any) -> CDTP2Message:
        """Decode a received multipart message (exactly one frame)."""
        views = frames_of(frames, (1,), "CDTP2 message")
        return decode_data_frame(views[0])


def make_bor(sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> CDTP2Message:
    """A BOR message: record 0 holds the user tags, record 1 the configuration."""
    return CDTP2Message(
        sender, CDTPType.BOR, [DataRecord(0, user_tags, []), DataRecord(1, config, [])]
    )


def make_eor(sender: str, user_tags: dict[str, Any], run_metadata: dict[str, Any]) -> CDTP2Message:
    """An EOR message: record 0 holds the user tags, record 1 the run metadata."""
    return CDTP2Message(
        sender, CDTPType.EOR, [DataRecord(0, user_tags, []), DataRecord(1, run_metadata, [])]
    )


def split_bor_eor(msg: CDTP2Message) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user tags, configuration or run metadata) of a BOR or EOR; DecodeError otherwise."""
    if msg.msg_type not in (CDTPType.BOR, CDTPType.EOR):
        raise DecodeError(f"CDTP2 {CDTPType(msg.msg_type).name} message is neither BOR nor EOR")
    if len(msg.records) != 2:
        raise DecodeError(
            f"CDTP2 {msg.msg_type.name} message has {len(msg.records)} records instead of 2"
        )
    return msg.records[0].tags, msg.records[1].tags
