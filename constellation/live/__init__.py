"""Live data: watch a run's records as the receivers accept (or store) them.

``Streamer`` subscribes to the live service of every receiver of a group; ``read()`` returns a
:class:`Frame` with the new records per sender and the run events (:class:`BOR`,
:class:`EOR`). docs/live.md describes the API, the policies and the wire format.
"""

from constellation.live.accounting import SenderStats
from constellation.live.frame import BOR, EOR, Frame, LiveRecord

__all__ = ["BOR", "EOR", "AsyncStreamer", "Frame", "LiveRecord", "SenderStats", "Streamer"]


def __getattr__(name: str) -> object:
    # The streamer pulls in zmq and discovery: imported on first use only (the receiver
    # imports this package for its live hooks).
    if name == "Streamer":
        from constellation.live.streamer import Streamer

        return Streamer
    if name == "AsyncStreamer":
        from constellation.live.aio import AsyncStreamer

        return AsyncStreamer
    raise AttributeError(name)
