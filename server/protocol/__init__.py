"""The Tally wire format: every message, its encoding, and the one error type.

Messages are JSON text frames, each an object with a ``type``. Clients ask for
the WebSocket subprotocol :data:`SUBPROTOCOL`. The package has these parts:

- :mod:`~server.protocol.messages`: one frozen dataclass per message type;
- :mod:`~server.protocol.names`: the rule for display names;
- :mod:`~server.protocol.encoding` and :mod:`~server.protocol.decoding`: JSON
  out and in, validating every field on the way in, with
  :mod:`~server.protocol.errors` holding the one error type.

It uses the standard library only: the dashboard imports it too.
See ``docs/protocol.md`` for the prose version with a worked session.
"""

from tally.server.protocol.decoding import decode_client, decode_server, decode_server_frame
from tally.server.protocol.encoding import encode, encode_batch, encode_welcomes
from tally.server.protocol.errors import ErrorCode, ProtocolError
from tally.server.protocol.frozen import quick_init
from tally.server.protocol.hosts import is_loopback_host
from tally.server.protocol.messages import (
    HISTORY_POINTS,
    ID_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    NAME_MAX_CHARS,
    PAGE_MAX,
    SECRET_MAX_CHARS,
    SECRET_MIN_CHARS,
    SUBPROTOCOL,
    SUBPROTOCOL_V1,
    SUBPROTOCOL_V2,
    SUBPROTOCOLS,
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    ClientsPage,
    ClientsRequest,
    Error,
    Hello,
    HistoryPage,
    HistoryPoint,
    HistoryRequest,
    LimitsInfo,
    Online,
    Presence,
    Rename,
    Resume,
    ServerInfo,
    ServerMessage,
    StoreStatus,
    Update,
    Welcome,
    session_id,
    sort_key,
)
from tally.server.protocol.names import check_name, is_unsafe

__all__ = [
    "HISTORY_POINTS",
    "ID_MAX_CHARS",
    "INT64_MAX",
    "INT64_MIN",
    "NAME_MAX_CHARS",
    "PAGE_MAX",
    "SECRET_MAX_CHARS",
    "SECRET_MIN_CHARS",
    "SUBPROTOCOL",
    "SUBPROTOCOLS",
    "SUBPROTOCOL_V1",
    "SUBPROTOCOL_V2",
    "Ack",
    "Add",
    "ClientInfo",
    "ClientMessage",
    "ClientsPage",
    "ClientsRequest",
    "Error",
    "ErrorCode",
    "Hello",
    "HistoryPage",
    "HistoryPoint",
    "HistoryRequest",
    "LimitsInfo",
    "Online",
    "Presence",
    "ProtocolError",
    "Rename",
    "Resume",
    "ServerInfo",
    "ServerMessage",
    "StoreStatus",
    "Update",
    "Welcome",
    "check_name",
    "decode_client",
    "decode_server",
    "decode_server_frame",
    "encode",
    "encode_batch",
    "encode_welcomes",
    "is_loopback_host",
    "is_unsafe",
    "session_id",
    "sort_key",
]

# The messages made for every add get a faster __init__ that makes the same objects (see frozen.py).
for _message in (Add, Update, Ack):
    quick_init(_message)
