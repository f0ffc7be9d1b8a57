"""Assembly layer: TransmitterSatellite — BOR / DATA / EOR sending on top of ``net.data``.

User code only makes records in ``do_run`` with :meth:`TransmitterSatellite.send_record`; the
framework sends the BOR (``bor_tags`` + the effective configuration) after ``do_starting`` and
the EOR (``eor_tags`` + run metadata) after ``do_stopping``, and fails the run to ERROR when the
receiver does not keep up.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import zmq

from constellation.core.config import Configuration
from constellation.core.run_tracker import RunCondition, make_run_metadata
from constellation.core.states import State
from constellation.errors import DataTimeoutError
from constellation.metrics import RateProbe
from constellation.net.data import DataSender
from constellation.net.discovery import Discovery, ServiceId
from constellation.protocol.cdtp2 import make_bor, make_eor
from constellation.satellite import Satellite

__all__ = ["TransmitterSatellite"]

_RUN_METRIC_STATES = frozenset({State.RUN, State.stopping})


def _dtype_tag(dtype: np.dtype[Any]) -> str:
    return dtype.name if dtype.byteorder in ("=", "|") else dtype.str


class TransmitterSatellite(Satellite):
    """A satellite that streams records to receivers over CDTP2."""

    handles_data = True

    def __init__(self, name: str, group: str, *, data_port: int = 0, **kwargs: Any) -> None:
        super().__init__(name, group, **kwargs)
        self._data_port = data_port
        self.data: DataSender | None = None
        #: Tags of the begin-of-run message; set them in ``do_starting``.
        self.bor_tags: dict[str, Any] = {}
        #: Tags of the end-of-run message; set them in ``do_stopping``.
        self.eor_tags: dict[str, Any] = {}
        self._bor_sent = False
        self._eor_sent = False
        self._time_start = datetime.now(timezone.utc)
        self._abort_lock = threading.Lock()
        self.metrics.register(
            "TX_RECORDS", "", "Records sent in this run", self._tx_records, 5.0, _RUN_METRIC_STATES
        )
        self.metrics.register(
            "TX_BYTES", "B", "Block bytes sent in this run", self._tx_bytes, 5.0, _RUN_METRIC_STATES
        )
        self._rate_probe = RateProbe()
        self.metrics.register(
            "TX_RATE",
            "Hz",
            "Records sent per second",
            lambda: self._rate_probe.rate(self._tx_records()),
            5.0,
            _RUN_METRIC_STATES,
        )

    # --- user API -------------------------------------------------------------------------------
    def send_record(self, blocks: Any | Sequence[Any], tags: dict[str, Any] | None = None) -> int:
        """Queue one record and return its sequence number.

        ``blocks`` is one block or a list of blocks: bytes, bytearray, memoryview or numpy
        arrays. A numpy array is sent without copying it here (do not modify it afterwards) and
        its dtype is recorded in the ``dtype`` tag. Blocks while the queue is full, up to
        ``_data.data_timeout``, then raises DataTimeoutError (the run fails to ERROR).
        """
        if self.data is None or not self.data.running:
            if self.framework.data.disable_transmission and self.state is State.RUN:
                return 0
            raise DataTimeoutError("records can only be sent while running")
        if isinstance(blocks, (bytes, bytearray, memoryview, np.ndarray)):
            blocks = (blocks,)
        record_tags = dict(tags) if tags else {}
        nbytes = 0
        for block in blocks:
            if isinstance(block, np.ndarray):
                record_tags.setdefault("dtype", _dtype_tag(block.dtype))
                nbytes += block.nbytes
            else:
                nbytes += len(block) if not isinstance(block, memoryview) else block.nbytes
        return self.data.add(record_tags, blocks, nbytes)

    def can_send_record(self) -> bool:
        """True if :meth:`send_record` would not block now (for code that prefers to drop)."""
        return self.data is not None and self.data.running and self.data.can_send()

    # --- framework --------------------------------------------------------------------------
    def _announce_extra(self, discovery: Discovery) -> None:
        self.data = DataSender(
            zmq.Context.instance(),
            self.scope,
            self.canonical_name,
            self._data_port,
            on_error=self._on_send_error,
        )
        discovery.announce(ServiceId.DATA, self.data.port)

    def _on_send_error(self, exc: BaseException) -> None:
        self.fail(f"{type(exc).__name__} in data sending: {exc}", exc)

    def _framework_initialize(self, config: Configuration) -> None:
        options = self.framework.data
        if self.data is not None:
            self.data.configure(options.payload_threshold, options.queue_size, options.data_timeout)
            if self.discovery is not None:
                if options.disable_transmission:
                    self.discovery.withdraw(ServiceId.DATA)
                else:
                    self.discovery.announce(ServiceId.DATA, self.data.port)

    def _framework_start(self, run_id: str) -> None:
        assert self.data is not None
        self._bor_sent = self._eor_sent = False
        self._time_start = datetime.now(timezone.utc)
        if self.framework.data.disable_transmission:
            return
        config = self.config.effective()
        self.data.send_message(
            make_bor(self.canonical_name, dict(self.bor_tags), config),
            self.framework.data.bor_timeout,
        )
        self._bor_sent = True
        self.data.begin_run()

    def _framework_stop(self) -> None:
        if self.data is not None and self._bor_sent:
            self.data.end_run(self.framework.data.data_timeout)

    def _framework_stopped(self, condition: RunCondition) -> None:
        self.metrics.publish_now("TX_RECORDS", self._tx_records())
        self.metrics.publish_now("TX_BYTES", self._tx_bytes())
        if self._bor_sent and not self._eor_sent:
            self._send_eor(condition, self.framework.data.eor_timeout)

    def _send_eor(self, condition: RunCondition, timeout: float) -> None:
        assert self.data is not None
        metadata = make_run_metadata(
            self.run_id,
            self._time_start,
            datetime.now(timezone.utc),
            condition,
            self.data.records_sent,
            self.version,
            license=self.framework.data.license,
        )
        self._eor_sent = True
        self.data.send_message(
            make_eor(self.canonical_name, dict(self.eor_tags), metadata), timeout
        )
        self.log.getChild("data").info(
            "run %s: %d records sent, condition %s",
            self.run_id,
            metadata["data_records"],
            metadata["condition"],
        )

    def _framework_failure(self, previous: State) -> None:
        if self._bor_sent and not self._eor_sent:
            threading.Thread(
                target=self._abort_run, name=f"{self.canonical_name}-abort", daemon=True
            ).start()

    def _abort_run(self) -> None:
        """Best effort after a failure: flush briefly and send an ABORTED EOR."""
        with self._abort_lock:
            if self._eor_sent or self.data is None:
                return
            with contextlib.suppress(DataTimeoutError):
                self.data.end_run(1.0)
            try:
                self._send_eor(
                    self.run_condition | RunCondition.ABORTED | RunCondition.TAINTED, 1.0
                )
            except Exception as exc:
                self.log.warning("could not send the end-of-run after the failure: %s", exc)

    def _close_extra(self) -> None:
        if self.data is not None:
            self.data.close()

    def _tx_records(self) -> int:
        return self.data.records_sent if self.data else 0

    def _tx_bytes(self) -> int:
        return self.data.bytes_sent if self.data else 0
