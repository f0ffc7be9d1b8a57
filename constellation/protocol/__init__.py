"""Protocol layer: pure codecs of the Constellation wire protocols (bytes in, frozen objects out).

One module per protocol: CSCP v1 (control), CHP v1 (heartbeats), CMDP v1 (monitoring),
CDTP v2 (data) and CHIRP v1 (discovery beacons). Nothing here imports zmq or does I/O.
Decoders raise only :class:`~constellation.errors.DecodeError` and its subclasses; encoders
raise :class:`~constellation.errors.EncodeError` for values that cannot travel.
"""

from constellation.protocol.cdtp2 import (
    CDTP2Message,
    CDTPType,
    DataRecord,
    decode_data_frame,
    encode_data_frame,
    make_bor,
    make_eor,
    split_bor_eor,
)
from constellation.protocol.chirp import (
    BEACON_SIZE,
    CHIRP_MULTICAST_ADDRESS,
    CHIRP_PORT,
    ChirpBeacon,
    ChirpType,
    ServiceId,
    name_id,
)
from constellation.protocol.chp1 import CHP1Message, CHPFlags
from constellation.protocol.cmdp1 import (
    LOG_LEVELS,
    CMDP1Log,
    CMDP1Message,
    CMDP1Metric,
    CMDP1Notification,
    decode_cmdp1,
)
from constellation.protocol.common import (
    NO_PAYLOAD,
    NoPayload,
    Protocol,
    to_datetime,
    to_timestamp,
    utc_now,
    validate_canonical_name,
    validate_name,
    validate_run_id,
    validate_scalar,
    validate_wire_map,
)
from constellation.protocol.cscp1 import CSCP1Message, CSCPType

__all__ = [
    "BEACON_SIZE",
    "CHIRP_MULTICAST_ADDRESS",
    "CHIRP_PORT",
    "LOG_LEVELS",
    "NO_PAYLOAD",
    "CDTP2Message",
    "CDTPType",
    "CHP1Message",
    "CHPFlags",
    "CMDP1Log",
    "CMDP1Message",
    "CMDP1Metric",
    "CMDP1Notification",
    "CSCP1Message",
    "CSCPType",
    "ChirpBeacon",
    "ChirpType",
    "DataRecord",
    "NoPayload",
    "Protocol",
    "ServiceId",
    "decode_cmdp1",
    "decode_data_frame",
    "encode_data_frame",
    "make_bor",
    "make_eor",
    "name_id",
    "split_bor_eor",
    "to_datetime",
    "to_timestamp",
    "utc_now",
    "validate_canonical_name",
    "validate_name",
    "validate_run_id",
    "validate_scalar",
    "validate_wire_map",
]
