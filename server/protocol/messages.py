"""Every message of the Tally wire protocol, as frozen dataclasses.

One class per message type, each saying who sends it; ``TYPE`` is its
``type`` field on the wire. The codec (:mod:`server.protocol.codec`) turns
them into JSON and back, validating every field on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "HISTORY_POINTS",
    "ID_MAX_CHARS",
    "INT64_MAX",
    "INT64_MIN",
    "NAME_MAX_CHARS",
    "PRESENCE_EVENTS",
    "SUBPROTOCOL",
    "Ack",
    "Add",
    "ClientInfo",
    "ClientMessage",
    "Error",
    "Hello",
    "HistoryPoint",
    "Message",
    "Presence",
    "PresenceEvent",
    "Rename",
    "ServerMessage",
    "Update",
    "Welcome",
]

SUBPROTOCOL = "tally.v1"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NAME_MAX_CHARS = 32
ID_MAX_CHARS = 64
# How many recent points of the total a welcome carries (the dashboard's sparkline).
HISTORY_POINTS = 120


# -- client -> server ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on a connection: who I am and which session I resume.

    ``session`` is chosen by the client and kept across reconnects; op ids
    are deduplicated per session, so a resend after a reconnect is recognised.
    """

    TYPE: ClassVar[str] = "hello"
    name: str
    session: str


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``amount`` to the total. ``op`` is chosen by the client, unique per session."""

    TYPE: ClassVar[str] = "add"
    op: str
    amount: int


@dataclass(frozen=True, slots=True)
class Rename:
    """Change this connection's display name."""

    TYPE: ClassVar[str] = "rename"
    name: str


# -- server -> client ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connected client as everyone sees it. ``since`` is Unix time in seconds."""

    id: str
    name: str
    address: str
    since: float
    added: int


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The total after update ``seq``, applied at Unix time ``at``."""

    seq: int
    at: float
    total: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to ``hello``: your connection id and a full snapshot.

    Every ``update`` sent afterwards has a ``seq`` greater than this ``seq``.
    """

    TYPE: ClassVar[str] = "welcome"
    you: str
    total: int
    seq: int
    clients: tuple[ClientInfo, ...]
    history: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """Sent to everyone for every accepted add, in ``seq`` order with no gaps.

    ``client`` is the connection that added (it may have left since); ``op``
    is that client's op id, ``None`` for adds from the bare-number path.
    """

    TYPE: ClassVar[str] = "update"
    seq: int
    total: int
    amount: int
    name: str
    client: str
    op: str | None
    at: float


PresenceEvent: TypeAlias = Literal["joined", "left", "renamed"]
PRESENCE_EVENTS: dict[str, PresenceEvent] = {"joined": "joined", "left": "left", "renamed": "renamed"}


@dataclass(frozen=True, slots=True)
class Presence:
    """Sent to everyone when a client joins, leaves or renames itself."""

    TYPE: ClassVar[str] = "presence"
    event: PresenceEvent
    client: ClientInfo


@dataclass(frozen=True, slots=True)
class Ack:
    """Sent to the adder once its add is stored: ``seq`` is the update that applied it.

    A resent op id gets the original ack again; it is never applied twice.
    """

    TYPE: ClassVar[str] = "ack"
    op: str
    seq: int


@dataclass(frozen=True, slots=True)
class Error:
    """A refusal. ``code`` is one of :class:`ErrorCode`; nothing was changed."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    op: str | None = None


ClientMessage: TypeAlias = Hello | Add | Rename
ServerMessage: TypeAlias = Welcome | Update | Presence | Ack | Error
Message: TypeAlias = ClientMessage | ServerMessage
