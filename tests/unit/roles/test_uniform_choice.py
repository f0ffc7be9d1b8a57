"""Which receivers get uniform batches: those whose most specific data callback is
``receive_uniform_batch``; a subclass that overrides ``receive_data_batch`` or ``receive_data``
below it gets every record again."""

from __future__ import annotations

from typing import Any

from constellation.receiver import ReceiverSatellite, _uniform_is_current
from satellites.devnull_receiver import DevNullReceiver
from satellites.h5datawriter.satellite import H5DataWriter


class Batches(DevNullReceiver):
    def receive_data_batch(self, sender: str, records: Any) -> None: ...


class Records(DevNullReceiver):
    def receive_data(self, sender: str, record: Any) -> None: ...


class UniformAgain(Batches):
    def receive_uniform_batch(self, sender: str, batch: Any) -> None: ...


def test_uniform_only_where_it_is_the_most_specific_data_callback() -> None:
    assert _uniform_is_current(DevNullReceiver)
    assert _uniform_is_current(H5DataWriter)
    assert _uniform_is_current(UniformAgain)
    assert not _uniform_is_current(ReceiverSatellite)
    assert not _uniform_is_current(Batches)
    assert not _uniform_is_current(Records)
