"""Hypothesis strategies for the protocol tests: wire-safe values and hostile inputs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgpack
from hypothesis import strategies as st

from constellation.protocol import LOG_LEVELS

UTC = timezone.utc
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# Aware UTC datetimes with microsecond resolution survive the ext -1 round trip exactly.
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2500, 1, 1), timezones=st.just(UTC)
)
floats = st.floats(allow_nan=False)
texts = st.text(max_size=20)
names = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
canonical_names = st.builds(lambda t, n: f"{t}.{n}", names, names)

scalars = st.one_of(st.none(), st.booleans(), INT64, floats, texts, datetimes)
homogeneous_arrays = st.one_of(
    st.lists(st.booleans(), max_size=4),
    st.lists(INT64, max_size=4),
    st.lists(floats, max_size=4),
    st.lists(texts, max_size=4),
    st.lists(datetimes, max_size=4),
)
keys = st.text(max_size=10)

#: Maps that pass validate_wire_map (tags, configurations, BOR/EOR maps).
wire_maps: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.dictionaries(keys, st.one_of(scalars, homogeneous_arrays), max_size=4),
    lambda inner: st.dictionaries(keys, st.one_of(scalars, homogeneous_arrays, inner), max_size=4),
    max_leaves=12,
)

#: Header timestamps in all three ext -1 sizes (32, 64 and 96 bit).
timestamps = st.one_of(
    st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.just(0)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**34 - 1), st.integers(0, 999_999_999)),
    st.builds(msgpack.Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 999_999_999)),
)

#: Anything a CSCP payload may hold (valid for every peer when it is a map).
payloads = st.one_of(
    scalars,
    homogeneous_arrays,
    wire_maps,
    st.binary(max_size=16),
    st.lists(st.one_of(INT64, texts), max_size=4),  # positional arguments may mix types
)

log_levels = st.sampled_from(LOG_LEVELS)
upper_topics = st.from_regex(r"[A-Z0-9_.]{1,10}", fullmatch=True)


# --- hostile inputs ------------------------------------------------------------------------------

#: Any msgpack-encodable object, including what the codecs must reject (bin keys, ext types,
#: deep nesting, huge ints).
any_msgpack: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
        timestamps,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.binary(max_size=4)), inner, max_size=4),
    ),
    max_leaves=10,
)

protocol_ids = st.sampled_from(
    ["CSCP\x01", "CMDP\x01", "CHP\x01", "CDTP\x02", "CDTP\x01", "CSCP\x02", "XYZ"]
)


def pack(*objects: Any) -> bytes:
    """Concatenated msgpack encodings (bin type on)."""
    return b"".join(msgpack.packb(obj, use_bin_type=True) for obj in objects)


#: A frame of 0-6 msgpack objects, often starting with a protocol identifier.
msgpack_frames = st.builds(
    lambda first, rest: pack(*first, *rest),
    st.lists(protocol_ids, max_size=1),
    st.lists(any_msgpack, max_size=6),
)

frames_lists = st.lists(st.one_of(st.binary(max_size=64), msgpack_frames), max_size=4)
not_bytes: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.integers(), st.text(max_size=4), st.floats(), st.just([])
)
