"""The Tally wire format: every message, its encoding, and the one error type.

Messages are JSON text frames, each an object with a ``type``. Clients ask for
the WebSocket subprotocol :data:`SUBPROTOCOL`. The package has three parts:

- :mod:`~server.protocol.messages`: one frozen dataclass per message type;
- :mod:`~server.protocol.names`: the rule for display names;
- :mod:`~server.protocol.codec`: JSON in and out, validating every field,
  with :mod:`~server.protocol.errors` holding the one error type.

It uses the standard library only: the dashboard imports it too.
See ``docs/protocol.md`` for the prose version with a worked session.
"""

from server.protocol.codec import (
    decode_client,
    decode_server,
    decode_server_frame,
    encode,
    encode_batch,
    encode_welcomes,
)
from server.protocol.errors import ErrorCode, ProtocolError
from server.protocol.messages import (
    HISTORY_POINTS,
    ID_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    NAME_MAX_CHARS,
    SUBPROTOCOL,
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    Error,
    Hello,
    HistoryPoint,
    Presence,
    Rename,
    ServerMessage,
    Update,
    Welcome,
)
from server.protocol.names import check_name, is_unsafe

__all__ = [
    "HISTORY_POINTS",
    "ID_MAX_CHARS",
    "INT64_MAX",
    "INT64_MIN",
    "NAME_MAX_CHARS",
    "SUBPROTOCOL",
    "Ack",
    "Add",
    "ClientInfo",
    "ClientMessage",
    "Error",
    "ErrorCode",
    "Hello",
    "HistoryPoint",
    "Presence",
    "ProtocolError",
    "Rename",
    "ServerMessage",
    "Update",
    "Welcome",
    "check_name",
    "decode_client",
    "decode_server",
    "decode_server_frame",
    "encode",
    "encode_batch",
    "encode_welcomes",
    "is_unsafe",
]
