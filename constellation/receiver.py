"""Assembly layer: ReceiverSatellite — a satellite with the receiving data role.

The receiver takes data from every transmitter of its group, or only from those listed in
``_data.receive_from``; its :class:`~constellation.roles.receiving.ReceivingRole` connects the
data sockets when a run starts, tracks BOR → DATA → EOR per sender and writes substitute EORs
for senders that sent none. User code gets ``receive_bor``, ``receive_data_batch`` (or
``receive_data``; ``receive_uniform_batch`` too if overridden) and ``receive_eor``, all in the
hook worker, one at a time; the receive loop is :meth:`ReceiverSatellite.do_run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from constellation.core.run_tracker import RunTracker
from constellation.live.hooks import ReceiverLive
from constellation.protocol.cdtp2 import DataRecord
from constellation.protocol.cdtp2_uniform import UniformBatch
from constellation.roles.receiving import LAUNCH_DISCOVERY_TIMEOUT, ReceiveCallbacks, ReceivingRole
from constellation.satellite import Satellite

__all__ = ["LAUNCH_DISCOVERY_TIMEOUT", "ReceiverSatellite"]


class ReceiverSatellite(Satellite):
    """A satellite that receives the runs of transmitters.

    Override the ``receive_*`` callbacks; they run in the worker thread, one at a time. The
    framework's receive loop is :meth:`do_run`; a subclass that overrides it must call it.
    """

    #: Live service: False publishes each message once the receiver accepted it; a writer
    #: that publishes after storing (H5DataWriter) sets True and calls ``self.live.stored``.
    live_deferred = False
    #: With ``receive_uniform_batch`` overridden: whether the next run uses it (read when the
    #: run starts; a subclass may turn it off, e.g. for a mode that needs records anyway).
    uniform_batches = True

    def __init__(self, name: str, group: str, **kwargs: Any) -> None:
        callbacks = ReceiveCallbacks(
            bor=lambda *args: self.receive_bor(*args),
            batch=lambda *args: self.receive_data_batch(*args),
            eor=lambda *args: self.receive_eor(*args),
            uniform=(
                (lambda *args: self.receive_uniform_batch(*args))
                if _uniform_is_current(type(self))
                else None
            ),
            uniform_wanted=lambda: self.uniform_batches,
        )
        super().__init__(name, group, data_role=lambda ctx: ReceivingRole(ctx, callbacks), **kwargs)
        self._role = cast(ReceivingRole, self.data_role)
        #: The live data service (docs/live.md): its command, metrics and sockets.
        self.live = ReceiverLive(self, self.live_deferred)
        self._role.live = self.live

    # --- what the role saw ----------------------------------------------------------------------
    @property
    def tracker(self) -> RunTracker:
        """BOR / DATA / EOR tracking of every sender in the current (or last) run."""
        return self._role.tracker

    @property
    def rx_records(self) -> int:
        """Records received in the current (or last) run."""
        return self._role.rx_records

    @property
    def rx_bytes(self) -> int:
        """DATA-message bytes received in the current (or last) run."""
        return self._role.rx_bytes

    @property
    def last_message_bytes(self) -> int:
        """Frame bytes of the DATA message being handed to ``receive_data_batch``."""
        return self._role.last_message_bytes

    def run_condition_text(self) -> str:
        """The run's condition as this receiver saw it: the flags of all its EORs, ``NO_BOR``
        when records came without their BOR, ``NO_DATA`` when no sender began a run here."""
        return self._role.run_condition_text()

    # --- user callbacks (worker thread) -------------------------------------------------------
    def receive_bor(self, sender: str, user_tags: dict[str, Any], config: dict[str, Any]) -> None:
        """``sender`` began its run: its BOR tags and its full configuration."""

    def receive_data(self, sender: str, record: DataRecord) -> None:
        """One record of ``sender`` (``record.sequence``, ``.tags``, ``.blocks``)."""

    def receive_data_batch(self, sender: str, records: Sequence[DataRecord]) -> None:
        """The records of one DATA message of ``sender`` (default: ``receive_data`` each)."""
        for record in records:
            self.receive_data(sender, record)

    def receive_uniform_batch(self, sender: str, batch: UniformBatch) -> None:
        """A DATA message whose records share tags and block lengths, with consecutive
        sequence numbers (``batch.blocks``: views of the frame). Only called if a subclass
        overrides it; this default builds the records and calls ``receive_data_batch``."""
        self.receive_data_batch(sender, batch.records())

    def receive_eor(
        self, sender: str, user_tags: dict[str, Any], run_metadata: dict[str, Any]
    ) -> None:
        """``sender`` ended its run; ``run_metadata`` carries the condition with our flags.

        For a sender that vanished without EOR this is called with a substitute (the key
        ``substitute`` is True, the condition includes ABORTED).
        """

    def do_run(self, run_id: str) -> str | None:
        """The framework's receive loop: runs until stopped and every EOR is in (or timed out)."""
        self._role.receive(self.stop_requested)
        return None


def _uniform_is_current(cls: type) -> bool:
    """Whether ``receive_uniform_batch`` is overridden and no subclass below that override
    overrides ``receive_data_batch`` or ``receive_data`` (it expects to get every record)."""
    for klass in cls.__mro__:
        if klass is ReceiverSatellite:
            return False
        names = vars(klass)
        if "receive_uniform_batch" in names:
            return True
        if "receive_data_batch" in names or "receive_data" in names:
            return False
    return False
