"""The data service over loopback (uvicorn in a thread): endpoints, hostile input, token."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constellation.reader import open_run
from constellation.service.app import create_app
from tests.service.support import TX, TX2, serving

Files = tuple[Path, dict[str, Path]]


def test_runs_lists_every_file_with_errors(server: str) -> None:
    rows = {row["run_id"]: row for row in httpx.get(f"{server}/api/runs").json()}
    assert set(rows) == {"run1", "run2", "run3", "broken", "cut"}
    assert rows["run2"]["senders"] == {TX: 20, TX2: 20}
    assert rows["run2"]["condition"].startswith("ABORTED")
    assert "truncated" in rows["cut"]["error"]
    assert all("/" not in str(row["error"] or "") for row in rows.values())  # no server paths


def test_run_details_both_layouts(server: str) -> None:
    for run_id, layout in (("run1", "normal"), ("run2", "swmr"), ("run3", "normal")):
        info = httpx.get(f"{server}/api/runs/{run_id}").json()
        assert list(info["writers"]) == ["H5DataWriter.w"]
        sender = info["senders_detail"][TX]
        assert sender["layout"] == layout and sender["records"] == 20
        assert sender["bor"]["user_tags"]["note"] == f"beam {run_id}"
        assert sender["bor"]["configuration"] == {"rate": 5}
        assert sender["eor"]["run_metadata"]["data_records"] == 20


@pytest.mark.parametrize("run_id", ["run1", "run2", "run3"])
def test_record_slices_match_reader(server: str, run_dir: Files, run_id: str) -> None:
    reply = httpx.get(f"{server}/api/runs/{run_id}/{TX}/records", params={"start": 5, "stop": 9})
    assert reply.headers["content-type"] == "application/msgpack"
    got = msgpack.unpackb(reply.content)
    with open_run(run_dir[0] / f"data_{run_id}.h5") as run:
        want = list(run.records(TX, start=5))[:4]
    assert [r["sequence"] for r in got] == [6, 7, 8, 9]
    for record, expected in zip(got, want, strict=True):
        assert record["tags"] == expected.tags
        blocks = [
            np.frombuffer(b, d) for b, d in zip(record["blocks"], record["dtypes"], strict=True)
        ]
        assert all(np.array_equal(a, b) for a, b in zip(blocks, expected.blocks, strict=True))
    array = np.load(io.BytesIO(httpx.get(reply.url, params={"format": "npy"}).content))
    assert array.shape == (20, 1, 32) and array.dtype == np.dtype("<u2")
    assert np.array_equal(array[5, 0], want[0].blocks[0])


def test_file_download_range_and_etag(server: str, run_dir: Files) -> None:
    path = run_dir[1]["swmr"]
    data = path.read_bytes()
    whole = httpx.get(f"{server}/api/runs/run2/file")
    assert whole.status_code == 200 and whole.content == data
    etag = whole.headers["etag"]
    part = httpx.get(whole.url, headers={"Range": "bytes=100-", "If-Range": etag})
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    stale = httpx.get(whole.url, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == len(data)
    assert httpx.get(whole.url, headers={"If-None-Match": etag}).status_code == 304
    tail = httpx.get(whole.url, headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/runs/..%2F..%2Fetc%2Fpasswd", 404),
        ("/api/runs/%2e%2e/file", 404),
        ("/api/runs/..%252f/file", 404),
        ("/api/runs/nosuch", 404),
        ("/api/runs/nosuch/file", 404),
        ("/api/runs/run1/Nobody.x/records", 404),
        ("/api/runs/run1/..%2F..%2Fx/records", 404),
        ("/api/runs/run1/RandomTransmitter.tx/records?start=-3", 400),
        ("/api/runs/run1/RandomTransmitter.tx/records?start=5&stop=2", 400),
        ("/api/runs/run1/RandomTransmitter.tx/records?stop=99999999999999999999", 400),
        ("/api/runs/run1/RandomTransmitter.tx/records?start=0&stop=1000000000", 400),
        ("/api/runs/run1/RandomTransmitter.tx/records?format=pickle", 400),
        ("/api/runs/cut/RandomTransmitter.tx/records", 422),
        ("/api/runs/broken/RandomTransmitter.tx/follow", 422),
        ("/api/catalog?drop=table", 400),
        ("/api/catalog?limit=-1", 400),
        ("/etc/passwd", 404),
    ],
)
def test_hostile_requests(server: str, path: str, status: int) -> None:
    reply = httpx.get(server + path)
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["status"] == status and "Traceback" not in body["error"]


@pytest.mark.parametrize("header", ["bytes=99999999999-", "bytes=5-1", "bytes=-0", "bytes=a-b"])
def test_bad_ranges_416(server: str, header: str) -> None:
    reply = httpx.get(f"{server}/api/runs/run1/file", headers={"Range": header})
    assert reply.status_code == 416 and reply.headers["content-range"].startswith("bytes */")


_SEGMENT = st.sampled_from(["..", ".", "%2e%2e", "%2F", "%00", "run1", "file", "~", "a" * 300])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_SEGMENT, min_size=1, max_size=5), st.text(max_size=20))
def test_fuzzed_paths_never_escape(
    server: str, run_dir: Files, segments: list[str], q: str
) -> None:
    reply = httpx.get(f"{server}/api/runs/" + "/".join(segments), params={"start": q})
    assert reply.status_code < 500
    if reply.status_code >= 400:
        assert "error" in reply.json()
    elif reply.headers.get("content-type") == "application/x-hdf5":
        assert reply.content == (run_dir[0] / "data_run1.h5").read_bytes()


def test_catalog_search(server: str) -> None:
    found = httpx.get(f"{server}/api/catalog", params={"condition": "ABORTED"}).json()
    assert [row["run_id"] for row in found] == ["run2"]
    found = httpx.get(f"{server}/api/catalog", params={"text": "beam run1"}).json()
    assert [row["run_id"] for row in found] == ["run1"]


def test_token_required(run_dir: Files) -> None:
    with serving(create_app(run_dir[0], token="s3cret")) as url:
        assert httpx.get(f"{url}/api/runs").status_code == 401
        assert (
            httpx.get(f"{url}/api/runs", headers={"Authorization": "Bearer no"}).status_code == 401
        )
        ok = httpx.get(f"{url}/api/runs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()) == 5
        assert httpx.get(f"{url}/api/runs/run1/file?token=s3cret").status_code == 200


def test_slow_client_does_not_stall_others(server: str) -> None:
    with httpx.Client() as slow, slow.stream("GET", f"{server}/api/runs/run2/file") as stream:
        next(stream.iter_raw(1024))  # take one chunk, then stop reading
        for _ in range(5):
            assert httpx.get(f"{server}/api/runs", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("query", "key"), [("growing=yes", "growing"), ("since=yesterday", "since")]
)
def test_bad_search_values_answer_400(server: str, query: str, key: str) -> None:
    reply = httpx.get(f"{server}/api/catalog?{query}")
    assert reply.status_code == 400 and reply.json()["status"] == 400
    assert reply.json()["error"].startswith(f"catalog search {key}=")
