"""Pure parts of the live service: header codec, drop accounting, buffer policies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constellation.errors import ConfigError, DecodeError
from constellation.live.accounting import SequenceAccount
from constellation.live.buffer import BufferItem, LiveBuffer
from constellation.live.frame import Frame
from constellation.live.protocol import (
    LiveEndpoint,
    LiveHeader,
    check_codec,
    compress,
    decode_report,
    decompress,
    encode_report,
    endpoint_from_txt,
    sender_of_topic,
    subscription_topic,
    topic_for,
)
from constellation.live.tap import _Subscriptions
from constellation.protocol.cdtp2 import DataRecord, encode_data_frame


# --- protocol ----------------------------------------------------------------------------------
def test_header_round_trip() -> None:
    header = LiveHeader("DATA", "Tx.a", "run_1", 5, 3, 17, "lz4", 999, False, 12.5)
    assert LiveHeader.decode(header.encode()) == header


def test_the_mdns_txt_record_gives_the_endpoint_of_the_group_only() -> None:
    txt = {"group": "Edda", "name": "H5DataWriter.w", "lossless": "4002"}
    assert endpoint_from_txt("edda", txt, "127.0.0.1", 4001) == LiveEndpoint(
        "H5DataWriter.w", "tcp://127.0.0.1:4001", "tcp://127.0.0.1:4002"
    )
    assert endpoint_from_txt("other", txt, "127.0.0.1", 4001) is None
    for broken in ({"name": ""}, {"lossless": "x"}, {"lossless": "70000"}, {"group": ""}):
        assert endpoint_from_txt("edda", {**txt, **broken}, "127.0.0.1", 4001) is None
    assert endpoint_from_txt("edda", txt, "127.0.0.1", 0) is None


@given(st.binary(max_size=200))
def test_garbage_headers_raise_only_decode_errors(raw: bytes) -> None:
    try:
        LiveHeader.decode(raw)
    except DecodeError:
        pass


@pytest.mark.parametrize(
    ("change", "message"),
    [({"kind": "NOPE"}, "unknown kind"), ({"first": -1}, "first"), ({"codec": "x"}, "codec")],
)
def test_bad_header_fields_are_named(change: dict[str, object], message: str) -> None:
    import msgpack

    header = msgpack.unpackb(LiveHeader("DATA", "Tx.a", "r").encode())
    header.update(change)
    with pytest.raises(DecodeError, match=message):
        LiveHeader.decode(msgpack.packb(header))


def test_reports_round_trip_and_garbage_is_refused() -> None:
    assert decode_report(encode_report("abc", 10, 2)) == ("abc", 10, 2)
    for raw in (b"\x02", b"\x02\x93\x01\x02\x03", b"\x03" + encode_report("a", 1, 1)[1:]):
        with pytest.raises(DecodeError):
            decode_report(raw)


def test_topics_select_codec_and_sender() -> None:
    topic = topic_for("none", "Tx.A")
    assert topic.startswith(subscription_topic("none", None))
    assert topic.startswith(subscription_topic("none", "tx.a"))
    assert not topic.startswith(subscription_topic("none", "tx.ab"))
    assert not topic.startswith(subscription_topic("zstd", None))
    assert sender_of_topic(topic) == "tx.a"


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compression_round_trip(codec: str) -> None:
    data = bytes(range(256)) * 40
    packed = compress(codec, data)
    assert len(packed) < len(data)
    assert bytes(decompress(codec, packed, len(data))) == data
    with pytest.raises(DecodeError, match="header says"):
        decompress(codec, packed, len(data) + 1)
    with pytest.raises(DecodeError):
        decompress(codec, b"not compressed", 10)


def test_unknown_codec_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="none, lz4, zstd"):
        check_codec("snappy")
    assert check_codec(None) == "none" and check_codec("LZ4") == "lz4"


# --- accounting --------------------------------------------------------------------------------
@given(
    st.lists(st.integers(1, 20), min_size=1, max_size=40),
    st.lists(st.booleans(), max_size=40),
    st.booleans(),
)
def test_received_plus_dropped_equals_stored(
    sizes: list[int], lost: list[bool], lose_tail: bool
) -> None:
    account = SequenceAccount()
    assert account.on_bor("r", replayed=False)
    first, delivered = 1, []
    for pos, size in enumerate(sizes):
        gone = lost[pos] if pos < len(lost) else False
        if pos == len(sizes) - 1 and lose_tail:
            gone = True
        if not gone:
            skip = account.on_data(first, size)
            delivered += list(range(first + skip, first + size))
        first += size
    stored = first - 1
    account.on_eor(stored)
    stats = account.stats
    assert stats.received + stats.dropped == stored
    assert stats.received == len(delivered) == len(set(delivered))


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 10)), max_size=30))
def test_overlaps_and_duplicates_are_delivered_once(messages: list[tuple[int, int]]) -> None:
    account = SequenceAccount()
    account.on_bor("r", replayed=False)
    delivered: list[int] = []
    for first, count in messages:
        skip = account.on_data(first, count)
        delivered += list(range(first + skip, first + count)) if skip < count else []
    assert delivered == sorted(set(delivered))
    assert account.stats.received == len(delivered)


def test_a_late_joiner_counts_from_its_first_record_and_repeated_bors_are_ignored() -> None:
    account = SequenceAccount()
    assert account.on_data(5, 3) == 3  # before any BOR: ignored, not counted
    assert account.on_bor("r", replayed=True)
    assert not account.on_bor("r", replayed=True)
    assert account.on_data(100, 10) == 0
    account.on_eor(120)  # 110..120 lost
    assert (account.stats.received, account.stats.dropped) == (10, 11)
    assert account.on_bor("r2", replayed=False)
    account.on_data(2, 1)  # a live BOR: sequence 1 is missing
    assert account.stats.dropped == 12


def test_follow_starts_after_the_file() -> None:
    account = SequenceAccount()
    account.on_bor("r", replayed=True)
    account.start_after(50)
    assert account.on_data(45, 10) == 6  # 45..50 came from the file
    assert account.stats.received == 4 and account.stats.dropped == 0


# --- buffer ------------------------------------------------------------------------------------
def _item(kind: str, sender: str = "a", nbytes: int = 100, tag: int = 0) -> BufferItem:
    return BufferItem(kind, sender, nbytes, tag)


def test_drop_oldest_keeps_the_bound_and_every_bor_and_eor() -> None:
    buffer = LiveBuffer("drop-oldest", 1000)
    buffer.put(_item("BOR", nbytes=10))
    for n in range(50):
        buffer.put(_item("DATA", tag=n))
        assert buffer.nbytes <= 1000
    buffer.put(_item("EOR", nbytes=10))
    items = buffer.take()
    assert items[0].kind == "BOR" and items[-1].kind == "EOR"
    assert [i.payload for i in items if i.kind == "DATA"] == list(range(41, 50))
    assert buffer.discarded == 41 and buffer.nbytes == 0


def test_a_full_drop_oldest_buffer_waits_for_the_reader_then_drops_until_emptied() -> None:
    buffer = LiveBuffer("drop-oldest", 250, grace=0.5)
    assert buffer.put(_item("DATA")) and buffer.put(_item("DATA"))
    third = _item("DATA")
    assert buffer.wait_time(third, now=10.0) == 0.5  # full: the wait begins
    assert buffer.wait_time(third, now=10.3) == pytest.approx(0.2)
    assert buffer.wait_time(_item("EOR"), now=10.3) == 0.0  # control messages never wait
    assert buffer.wait_time(third, now=10.6) == 0.0  # over: put, and the oldest goes
    buffer.put(third)
    assert buffer.discarded == 1
    assert buffer.wait_time(_item("DATA"), now=11.0) == 0.0  # no new wait before a take
    buffer.take()
    assert buffer.put(_item("DATA")) and buffer.put(_item("DATA"))
    assert buffer.wait_time(_item("DATA"), now=12.0) == 0.5  # emptied: the next fill waits
    assert LiveBuffer("block", 250).wait_time(_item("DATA"), 0.0) == 0.0
    assert LiveBuffer("latest", 1).wait_time(_item("DATA"), 0.0) == 0.0


def test_latest_keeps_only_the_newest_record_per_sender() -> None:
    buffer = LiveBuffer("latest", 10**6)
    for n in range(5):
        buffer.put(_item("DATA", "a", tag=n))
        buffer.put(_item("DATA", "b", tag=10 + n))
    assert [(i.sender, i.payload) for i in buffer.take()] == [("a", 4), ("b", 14)]


def test_block_refuses_what_does_not_fit() -> None:
    buffer = LiveBuffer("block", 250)
    assert buffer.put(_item("DATA")) and buffer.put(_item("DATA"))
    assert buffer.wait_time(_item("DATA"), 0.0) == float("inf")
    assert not buffer.put(_item("DATA"))
    assert buffer.put(_item("EOR"))  # control messages always fit
    assert len(buffer.take()) == 3 and buffer.put(_item("DATA"))


def test_unknown_policy_and_bad_bound_are_refused() -> None:
    with pytest.raises(ValueError, match="drop-oldest, latest, block"):
        LiveBuffer("newest")
    with pytest.raises(ValueError, match="positive"):
        LiveBuffer("block", 0)


# --- subscription table of the tap ---------------------------------------------------------------
def test_subscription_counts_follow_subscribes_and_unsubscribes() -> None:
    subs = _Subscriptions()
    subs.change(b"#sub1", 1)
    subs.change(b"r", 1)
    subs.change(b"ztx.a\n", 1)
    assert subs.markers == 1 and subs.codecs == ("none", "zstd")
    assert subs.wanted("zstd", topic_for("zstd", "Tx.a"))
    assert not subs.wanted("zstd", topic_for("zstd", "Tx.b"))
    subs.change(b"r", -1)
    subs.change(b"ztx.a\n", -1)
    subs.change(b"#sub1", -1)
    subs.change(b"#sub1", -1)  # an extra unsubscription does not go negative
    assert (subs.markers, subs.codecs, subs.topics) == (0, (), {})


# --- numpy pipe ----------------------------------------------------------------------------------
def test_the_numpy_pipe_returns_unconsumed_rows_again() -> None:
    import numpy as np

    from constellation.live.frame import LiveRecord
    from constellation.live.pipe import NumpyPipe

    class _Quiet:
        def read(self, timeout: float | None) -> None:
            return None

    pipe = NumpyPipe(_Quiet(), "Tx.a")  # type: ignore[arg-type]

    def record(seq: int) -> LiveRecord:
        return LiveRecord(seq, {}, [np.array([seq, seq + 1], dtype=np.uint16)], None, 10.0 + seq)

    pipe.feed([record(1), record(2)])
    pipe.feed([record(3)])
    rows = pipe.read()
    assert rows["timestamp"].tolist() == [11.0, 12.0, 13.0]
    assert rows["data"].tolist() == [[1, 2], [2, 3], [3, 4]]
    pipe.consume(2)
    assert pipe.read()["data"].tolist() == [[3, 4]]
    assert pipe.read(flatten=True).tolist() == [[13.0, 3.0, 4.0]]
    bad = LiveRecord(4, {}, [np.zeros(3, dtype=np.uint16)], None, 0.0)
    with pytest.raises(DecodeError, match=r"record 4 is uint16\[3\], the pipe holds uint16\[2\]"):
        pipe.feed([bad])
    pipe.consume(10)
    assert len(pipe) == 0 and len(pipe.read()) == 0


# --- frames ------------------------------------------------------------------------------------
def _data(sender: str, first: int, count: int) -> tuple[LiveHeader, bytes]:
    records = [DataRecord(first + i, {}, [bytes([i]) * 4]) for i in range(count)]
    payload = encode_data_frame(sender, records)
    return LiveHeader("DATA", sender, "run_1", first, count, size=len(payload)), payload


def test_a_frame_counts_without_decoding_and_decodes_a_sender_when_asked() -> None:
    bad: list[int] = []
    frame = Frame(on_bad=lambda: bad.append(1))
    header_a, payload_a = _data("Tx.a", 1, 3)
    header_b, _ = _data("Tx.b", 1, 2)
    frame.add_data("Tx.a", header_a, payload_a, skip=1)
    frame.add_data("Tx.b", header_b, b"\xc1 not a CDTP2 frame", skip=0)
    # Counting and listing senders decode nothing: the bad payload is not noticed yet.
    assert (frame.counts(), frame.count(), list(frame), len(frame)) == (
        {"Tx.a": 2, "Tx.b": 2},
        4,
        ["Tx.a", "Tx.b"],
        2,
    )
    assert [r.sequence for r in frame["Tx.a"]] == [2, 3]
    assert frame["Tx.a"][0].blocks[0].tobytes() == b"\x01" * 4
    assert frame.bad_messages == 0 and not bad
    assert frame.records == {"Tx.a": frame["Tx.a"], "Tx.b": []}  # decoding all: Tx.b fails
    assert frame.bad_messages == 1 and bad == [1]
    assert frame.count() == 2


def test_decoded_records_keep_their_order_after_records_given_at_construction() -> None:
    header, payload = _data("Tx.a", 5, 2)
    first = _data("Tx.a", 1, 4)
    frame = Frame()
    frame.add_data("Tx.a", *first, skip=0)
    frame.add_data("Tx.a", header, payload, skip=0)
    given_frame = Frame({"Tx.a": frame["Tx.a"][:2]})
    given_frame.add_data("Tx.a", header, payload, skip=1)
    assert [r.sequence for r in frame["Tx.a"]] == [1, 2, 3, 4, 5, 6]
    assert [r.sequence for r in given_frame["Tx.a"]] == [1, 2, 6]
    assert given_frame.counts() == {"Tx.a": 3}
