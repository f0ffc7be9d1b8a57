"""Pure parsing of the data service: slices, byte ranges, identifiers, token (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from constellation.service.auth import token_ok
from constellation.service.slicing import (
    MAX_SLICE,
    BadRequest,
    check_run_id,
    check_sender,
    parse_range,
    parse_slice,
    run_id_of,
)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_slice_within_count(start: int, stop: int, count: int) -> None:
    if stop < start or stop - start > MAX_SLICE:
        with pytest.raises(BadRequest) as info:
            parse_slice(str(start), str(stop), count)
        assert info.value.status == 400
        return
    first, last = parse_slice(str(start), str(stop), count)
    assert 0 <= first <= last <= count
    assert last - first == max(0, min(stop, count) - min(start, count))


@given(st.text(max_size=30))
def test_slice_rejects_non_integers(text: str) -> None:
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return
    if text == "":
        assert parse_slice(text, text, 5) == (0, 5)
        return
    with pytest.raises(BadRequest):
        parse_slice(text, None, 10)


def test_slice_defaults() -> None:
    assert parse_slice(None, None, 7) == (0, 7)
    assert parse_slice("3", None, 7) == (3, 7)
    assert parse_slice("9", "12", 7) == (7, 7)
    with pytest.raises(BadRequest):
        parse_slice("-1", "4", 7)


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(1, 2**40))
def test_range_in_file(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if first >= size or last < first:
        with pytest.raises(BadRequest) as info:
            parse_range(header, size)
        assert info.value.status == 416
        return
    begin, end = parse_range(header, size)  # type: ignore[misc]
    assert (begin, end) == (first, min(size, last + 1))


@given(st.text(max_size=40))
def test_range_garbage_is_416_or_valid(header: str) -> None:
    try:
        span = parse_range(header, 1000)
    except BadRequest as exc:
        assert exc.status == 416
    else:
        assert span is not None and 0 <= span[0] < span[1] <= 1000


def test_range_forms() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=4-", 10) == (4, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    for bad in ("bytes=0-1,3-4", "bytes=-", "items=0-1", "bytes=10-", "bytes=-0", "bytes=5-2"):
        with pytest.raises(BadRequest):
            parse_range(bad, 10)


@given(st.text(max_size=60))
def test_identifiers_never_traverse(name: str) -> None:
    for check in (check_run_id, check_sender):
        try:
            accepted = check(name)
        except BadRequest as exc:
            assert exc.status == 404
        else:
            assert ".." not in accepted and not accepted.startswith(("/", "."))
            assert "\\" not in accepted and "\0" not in accepted and "%" not in accepted


def test_identifiers() -> None:
    assert check_run_id("run_42-a") == "run_42-a"
    assert check_sender("H5DataWriter.w/Type.Name") == "H5DataWriter.w/Type.Name"
    for bad in ("..", "../etc", "a/b", "%2e%2e", "", ".hidden"):
        with pytest.raises(BadRequest):
            check_run_id(bad)
    assert run_id_of("data_run7.h5") == "run7"
    assert run_id_of("other.h5") == "other"


def test_token_check() -> None:
    assert token_ok("s3cret", "Bearer s3cret", "")
    assert token_ok("s3cret", None, "start=1&token=s3cret")
    assert not token_ok("s3cret", "Bearer wrong", "token=")
    assert not token_ok("s3cret", None, "")
