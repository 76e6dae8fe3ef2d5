"""Every message of the Tally wire protocol, as frozen dataclasses.

One class per message type, each saying who sends it; ``TYPE`` is its
``type`` field on the wire. :mod:`server.protocol.encoding` turns them into
JSON and :mod:`server.protocol.decoding` back, validating every field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "HISTORY_POINTS",
    "ID_MAX_CHARS",
    "INT64_MAX",
    "INT64_MIN",
    "MARK_CHARS",
    "NAME_MAX_CHARS",
    "PAGE_MAX",
    "PRESENCE_EVENTS",
    "ROLES",
    "SECRET_MAX_CHARS",
    "SECRET_MIN_CHARS",
    "SORT_KEYS",
    "STORE_STATES",
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
    "Hello",
    "HistoryPage",
    "HistoryPoint",
    "HistoryRequest",
    "LimitsInfo",
    "Message",
    "Online",
    "Presence",
    "PresenceEvent",
    "Rename",
    "Resume",
    "Role",
    "ServerInfo",
    "ServerMessage",
    "SortKey",
    "StoreState",
    "StoreStatus",
    "Update",
    "Welcome",
    "session_id",
    "sort_key",
]

SUBPROTOCOL_V1 = "tally.v1"
SUBPROTOCOL_V2 = "tally.v2"
# What the dashboard speaks; a server speaks every version in SUBPROTOCOLS.
SUBPROTOCOL = SUBPROTOCOL_V2
SUBPROTOCOLS = (SUBPROTOCOL_V2, SUBPROTOCOL_V1)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NAME_MAX_CHARS = 32
ID_MAX_CHARS = 64
SECRET_MIN_CHARS = 16
SECRET_MAX_CHARS = 128
# How many recent points of the total a welcome carries (the dashboard's sparkline).
HISTORY_POINTS = 120
# Most items one clients or history request may ask for.
PAGE_MAX = 500

Role: TypeAlias = Literal["person", "watcher"]
ROLES: dict[str, Role] = {"person": "person", "watcher": "watcher"}
SortKey: TypeAlias = Literal["name", "added", "since"]
SORT_KEYS: dict[str, SortKey] = {"name": "name", "added": "added", "since": "since"}
StoreState: TypeAlias = Literal["available", "unavailable", "rewound"]
STORE_STATES: dict[str, StoreState] = {"available": "available", "unavailable": "unavailable", "rewound": "rewound"}
# A history fingerprint and a seal are this many hex digits.
MARK_CHARS = 16


def session_id(secret: str, version: int = 2) -> str:
    """The session a secret proves: op ids are deduplicated per session.

    v2 clients send a random ``secret`` that only they know; the session is
    its hash, so nobody can use another client's op ids without its secret,
    and every server of a cluster derives the same session from it. v1 clients
    send their session in the clear; it is hashed into its own namespace so
    that it can never collide with a v2 session.
    """
    digest = hashlib.sha256(f"tally.v{version} session:{secret}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


def sort_key(sort: SortKey) -> Callable[[ClientInfo], tuple[object, ...]]:
    """The order of the people list for ``sort``: the server's pages and the dashboard's table agree on it."""
    return _SORTS[sort]


# -- client -> server ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a reconnecting client left off: the ledger, its epoch, and the last seq it has.

    With ``total``, ``fingerprint`` and ``seal`` (all three, as the server sent them with
    that update or welcome), the server can tell whether its store still holds that
    history: a store restored from an older copy does not, and the server says so.
    """

    ledger: str
    epoch: int
    seq: int
    total: int | None = None
    fingerprint: str = ""
    seal: str = ""


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on a connection: who I am, my session, and where I left off.

    v2 sends ``secret`` (the session is derived from it, see :func:`session_id`);
    v1 sends ``session``. A ``watcher`` (a script that watches or adds) is not
    listed among the people online. ``resume`` asks for the updates missed
    since then instead of only a snapshot. ``since`` (Unix seconds) is when this
    person first came, said again on every reconnect so that the people list's
    "since" survives a reconnect or a server restart; the server keeps it
    within its retention window and never in the future.
    """

    TYPE: ClassVar[str] = "hello"
    name: str
    session: str | None = None
    secret: str | None = None
    role: Role = "person"
    resume: Resume | None = None
    since: float | None = None


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``amount`` to the total. ``op`` is chosen by the client, unique per session.

    ``undo`` (v2) names an earlier op of the same session that this add takes
    back: its amount must be exactly the opposite.
    """

    TYPE: ClassVar[str] = "add"
    op: str
    amount: int
    undo: str | None = None


@dataclass(frozen=True, slots=True)
class Rename:
    """Change this connection's display name."""

    TYPE: ClassVar[str] = "rename"
    name: str


@dataclass(frozen=True, slots=True)
class ClientsRequest:
    """(v2) Ask for one page of the people online, sorted and filtered by name."""

    TYPE: ClassVar[str] = "clients"
    id: str
    offset: int = 0
    limit: int = 50
    sort: SortKey = "name"
    descending: bool = False
    filter: str = ""


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """(v2) Ask for the total over time since Unix time ``since``, in at most ``points`` points."""

    TYPE: ClassVar[str] = "history"
    id: str
    since: float
    points: int = 200


# -- server -> client ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connected person as everyone sees it.

    ``since`` is Unix time in seconds. ``added`` is what the person's session
    has added in all (across reconnects, within the server's retention).
    ``address`` is ``None`` unless the server shows addresses. ``tag`` tells
    apart people who chose the same name: a short form of their session.
    """

    id: str
    name: str
    since: float
    added: int
    address: str | None = None
    tag: str = ""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The total after update ``seq``, applied at Unix time ``at``."""

    seq: int
    at: float
    total: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which server answered: its version, and its id within a cluster."""

    version: str
    id: str


@dataclass(frozen=True, slots=True)
class LimitsInfo:
    """The server's limits, so that a client refuses early what the server would refuse."""

    max_amount: int
    rate: float
    burst: int
    retention: float  # seconds an op id is remembered for dedupe and undo


@dataclass(frozen=True, slots=True)
class Update:
    """Sent to everyone for every accepted add, in ``seq`` order with no gaps.

    ``client`` is the connection that added (it may have left since); ``op``
    is that client's op id, ``None`` for adds from the bare-number path.
    ``undoes`` (v2) is the seq of the update this add took back. ``fingerprint``
    (v2) is the history's digest after this update (equal at one seq means the same
    history) and ``seal`` the server's proof that it said so: a client sends both back
    when it resumes (see :class:`Resume`). Only the last of the updates sent together
    (one commit's) is sealed; on the others ``seal`` is "" (and left out of the JSON).
    """

    TYPE: ClassVar[str] = "update"
    seq: int
    total: int
    amount: int
    name: str
    client: str
    op: str | None
    at: float
    tag: str = ""
    undoes: int | None = None
    fingerprint: str = ""
    seal: str = ""


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """(v2) Whether the server can store adds now, sent to everyone when that changes (and in the welcome).

    ``unavailable``: the store is away (down, loading, a disk fault); adds are refused
    ``unavailable`` meanwhile and should be kept and sent again once it is ``available``.
    ``rewound``: the store lost acknowledged updates (restored from an older copy, a
    replica promoted, emptied); adds are refused until the servers have restored them,
    then a new epoch begins and clients resynchronise. ``reason`` is for people;
    ``since`` (Unix seconds) is when this state began.
    """

    TYPE: ClassVar[str] = "store"
    state: StoreState
    reason: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to ``hello``: your ids and a snapshot of everything.

    Every ``update`` sent afterwards has a ``seq`` greater than this ``seq``.
    ``clients`` lists everyone online when ``live`` (a small room: joins and
    leaves follow as ``presence``); otherwise it is empty, ``online`` counts
    them, and a client asks for pages with ``clients`` requests.
    ``recent`` are the last few updates, for the activity log; ``missed``,
    when not ``None``, are all the updates after the ``resume`` seq.
    ``fingerprint`` and ``seal`` are those of the head (see :class:`Update`);
    ``store`` says whether adds can be stored now.
    """

    TYPE: ClassVar[str] = "welcome"
    you: str
    total: int
    seq: int
    clients: tuple[ClientInfo, ...]
    history: tuple[HistoryPoint, ...]
    session: str = ""
    added: int = 0
    missed: tuple[Update, ...] | None = None
    ledger: str = ""
    epoch: int = 0
    server: ServerInfo = ServerInfo("", "")
    limits: LimitsInfo | None = None
    online: int = 0
    live: bool = True
    recent: tuple[Update, ...] = ()
    fingerprint: str = ""
    seal: str = ""
    store: StoreStatus | None = None


_SORTS: dict[SortKey, Callable[[ClientInfo], tuple[object, ...]]] = {
    "name": lambda c: (c.name.casefold(), c.since),
    "added": lambda c: (c.added, c.name.casefold()),
    "since": lambda c: (c.since, c.name.casefold()),
}

PresenceEvent: TypeAlias = Literal["joined", "left", "renamed"]
PRESENCE_EVENTS: dict[str, PresenceEvent] = {"joined": "joined", "left": "left", "renamed": "renamed"}


@dataclass(frozen=True, slots=True)
class Presence:
    """Sent to everyone when a person joins, leaves or renames, while the room is live."""

    TYPE: ClassVar[str] = "presence"
    event: PresenceEvent
    client: ClientInfo


@dataclass(frozen=True, slots=True)
class Online:
    """(v2) How many people are online, and whether their joins and leaves are sent live."""

    TYPE: ClassVar[str] = "online"
    count: int
    live: bool


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
    """A refusal. ``code`` is one of :class:`ErrorCode`; nothing was changed.

    ``op`` is the add it answers, ``id`` (v2) the request it answers.
    """

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    op: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ClientsPage:
    """(v2) Answer to a ``clients`` request: ``total`` people match, these are from ``offset``."""

    TYPE: ClassVar[str] = "clients"
    id: str
    offset: int
    total: int
    clients: tuple[ClientInfo, ...]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """(v2) Answer to a ``history`` request: the total at each point, oldest first."""

    TYPE: ClassVar[str] = "history"
    id: str
    points: tuple[HistoryPoint, ...]


ClientMessage: TypeAlias = Hello | Add | Rename | ClientsRequest | HistoryRequest
ServerMessage: TypeAlias = Welcome | Update | Presence | Online | Ack | Error | ClientsPage | HistoryPage | StoreStatus
Message: TypeAlias = ClientMessage | ServerMessage
