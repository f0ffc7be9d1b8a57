"""Read run files served by ``constellation-h5 serve``, with the API of ``open_run``.

::

    from constellation.reader.remote import open_remote

    with open_remote("http://daq-disk:8000", "run42", token="...") as run:
        for sender in run.senders:
            print(sender, run.record_count(sender), run.eor(sender))
            for record in run.records(sender):
                ...  # record.sequence, record.tags, record.blocks (typed numpy arrays)
        for record in run.follow("RandomTransmitter.t1", start=0):  # until the EOR
            ...

Fetched records are cached (:mod:`constellation.reader.remote_cache`); ``refresh`` re-reads
the run's details so record counts of a growing file move on. HTTP errors raise
:class:`~constellation.errors.InputFileError` (unknown run, unreadable file) or ``KeyError``
(unknown sender), as ``open_run`` does for local files.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import numpy as np

from constellation.errors import InputFileError
from constellation.reader.remote_cache import CHUNK, RecordCache
from constellation.reader.values import Record

__all__ = ["RemoteRun", "open_remote", "to_record"]


def to_record(item: dict[str, Any]) -> Record:
    """A wire-format record map (docs/data-service.md) as a :class:`Record` with typed blocks."""
    blocks = item["blocks"]
    if blocks and isinstance(blocks[0], str):
        blocks = [base64.b64decode(block) for block in blocks]
    dtypes = item.get("dtypes") or ["|u1"] * len(blocks)
    arrays = [np.frombuffer(b, np.dtype(d)) for b, d in zip(blocks, dtypes, strict=True)]
    return Record(int(item["sequence"]), dict(item["tags"]), arrays)


def open_remote(
    url: str,
    run_id: str,
    token: str | None = None,
    cache: RecordCache | str | None = None,
    timeout: float = 30.0,
) -> RemoteRun:
    """Open run ``run_id`` of the data service at ``url`` (``cache``: a RecordCache or dir)."""
    return RemoteRun(url, run_id, token, cache, timeout)


class RemoteRun:
    """A served run file; see the module docstring."""

    def __init__(
        self,
        url: str,
        run_id: str,
        token: str | None = None,
        cache: RecordCache | str | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._run = quote(run_id, safe="")
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.cache = cache if isinstance(cache, RecordCache) else RecordCache(cache)
        self._info: dict[str, Any] = {}
        self.refresh()

    # --- the open_run API ---------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return str(self._info["run_id"])

    @property
    def path(self) -> str:
        return f"{self.url}/api/runs/{self._run}"

    @property
    def writers(self) -> list[str]:
        return list(self._info.get("writers", {}))

    @property
    def senders(self) -> list[str]:
        return list(self._info.get("senders_detail", {}))

    @property
    def growing(self) -> bool:
        return bool(self._info.get("growing"))

    def writer_info(self, writer: str) -> dict[str, Any]:
        return dict(self._info["writers"][writer])

    def refresh(self) -> None:
        """Fetch the run's details again (record counts, EORs of a growing file)."""
        self._info = self._get(f"/api/runs/{self._run}").json()
        if self._info.get("error"):
            raise InputFileError(self.path, str(self._info["error"]))

    def bor(self, sender: str) -> dict[str, Any]:
        return dict(self._sender(sender)["bor"])

    def eor(self, sender: str) -> dict[str, Any] | None:
        return self._sender(sender)["eor"]

    def layout(self, sender: str) -> str:
        return str(self._sender(sender)["layout"])

    def record_count(self, sender: str) -> int:
        return int(self._sender(sender)["records"])

    def records(self, sender: str, start: int = 0) -> Iterator[Record]:
        """Records of ``sender`` from ``start`` up to the count seen at the last refresh."""
        count = self.record_count(sender)
        position = max(start, 0)
        while position < count:
            chunk = position // CHUNK
            items = self._chunk(sender, chunk, count)
            if not items:
                return
            for item in items[position - chunk * CHUNK :]:
                yield to_record(item)
            position = chunk * CHUNK + len(items)

    def array(self, sender: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Fixed-shape records ``[start, stop)`` as one array (records, blocks, values)."""
        params: dict[str, Any] = {"format": "npy", "start": start}
        if stop is not None:
            params["stop"] = stop
        reply = self._get(self._records_path(sender), params=params)
        return np.load(io.BytesIO(reply.content), allow_pickle=False)

    def follow(self, sender: str, start: int = 0) -> Iterator[Record]:
        """Records as they are written, from position ``start``; ends after the EOR."""
        self._sender(sender)
        path = f"/api/runs/{self._run}/{quote(sender, safe='/')}/follow"
        with self._client.stream("GET", path, params={"start": start}, timeout=None) as reply:
            self._check(reply)
            event = ""
            for line in reply.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "end":
                        return
                elif line.startswith("data: ") and event == "record":
                    yield to_record(json.loads(line[6:]))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------
    def _chunk(self, sender: str, chunk: int, count: int) -> list[dict[str, Any]]:
        cached = self.cache.get(self.run_id, sender, chunk)
        if cached is not None:
            return cached
        first = chunk * CHUNK
        params = {"start": first, "stop": min(count, first + CHUNK)}
        items = msgpack.unpackb(self._get(self._records_path(sender), params=params).content)
        self.cache.put(self.run_id, sender, chunk, items)
        return list(items)

    def _records_path(self, sender: str) -> str:
        return f"/api/runs/{self._run}/{quote(self._key(sender), safe='/')}/records"

    def _sender(self, sender: str) -> dict[str, Any]:
        return dict(self._info["senders_detail"][self._key(sender)])

    def _key(self, sender: str) -> str:
        senders = self._info.get("senders_detail", {})
        if sender in senders:
            return sender
        folded = [key for key in senders if key.casefold() == sender.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise KeyError(f"no sender {sender!r} in {self.path} (senders: {', '.join(senders)})")

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            reply = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise InputFileError(self.url + path, f"cannot reach the data service: {exc}") from exc
        self._check(reply)
        return reply

    def _check(self, reply: httpx.Response) -> None:
        if reply.status_code < 400:
            return
        try:
            message = reply.read() and reply.json().get("error", reply.text)
        except ValueError:
            message = reply.text[:200]
        raise InputFileError(str(reply.url), f"HTTP {reply.status_code}: {message}")
