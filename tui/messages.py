"""What the link tells whoever runs it: past-tense facts, as plain dataclasses.

The link posts these to one callable (the dashboard, or a script's outcome).
They do not depend on Textual, so ``tally add``, ``watch`` and ``status`` never
load it: the dashboard wraps each one in a Textual message of its own
(:class:`tui.app.LinkEvent`). ``REPLACEABLE`` events may be dropped for a newer
one of the same type when several wait to be handled (only the latest counts).
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.server.protocol import ClientsPage, Error, HistoryPage, Online, Presence, StoreStatus, Update, Welcome
from tally.tui.pending import PendingAdd

__all__ = [
    "REPLACEABLE",
    "AddAcknowledged",
    "ClientsPageArrived",
    "Connected",
    "Connecting",
    "ConnectionLost",
    "Event",
    "GaveUp",
    "HistoryArrived",
    "LatencyMeasured",
    "LedgerChanged",
    "OnlineChanged",
    "PendingChanged",
    "PresenceChanged",
    "ServerRefused",
    "StoreChanged",
    "UpdatesArrived",
]


@dataclass
class Connecting:
    """An attempt to reach the server has started."""

    url: str
    attempt: int


@dataclass
class Connected:
    """The server welcomed us: a full snapshot to replace whatever we showed."""

    welcome: Welcome


@dataclass
class LedgerChanged:
    """The server at this address now holds a different ledger than the one our pending adds are for.

    None of them was sent; the app asks the user what to do (see ``Link.keep_for_other_ledger``).
    """

    expected: str
    found: str
    pending: int


@dataclass
class ConnectionLost:
    """The connection dropped or could not be made; we will retry at ``retry_at`` (monotonic).

    ``resync``: the server closed it so that every dashboard starts afresh (the ledger was repaired).
    """

    reason: str
    retry_at: float
    attempt: int
    resync: bool = False


@dataclass
class GaveUp:
    """The server refused us in a way retrying will not fix; waiting for the user."""

    reason: str


@dataclass
class UpdatesArrived:
    """Updates in seq order, gathered so a flood repaints at a bounded rate."""

    updates: list[Update]


@dataclass
class PresenceChanged:
    """Joins, leaves and renames that arrived together, in order."""

    presences: list[Presence]


@dataclass
class OnlineChanged:
    online: Online


@dataclass
class ClientsPageArrived:
    page: ClientsPage


@dataclass
class HistoryArrived:
    page: HistoryPage


@dataclass
class ServerRefused:
    """The server answered one of our messages with an error; ``add`` is the add it refused, if one was.

    ``settled``: the add was refused for good and is no longer pending (else it goes again shortly).
    """

    error: Error
    add: PendingAdd | None = None
    settled: bool = False


@dataclass
class AddAcknowledged:
    """One of our adds is stored, as update ``seq``."""

    add: PendingAdd
    seq: int


@dataclass
class StoreChanged:
    """The server's store changed state: adds wait (``unavailable``, ``rewound``) or are taken again.

    ``told``: the server said so (a ``store`` message, or its welcome); otherwise the
    link inferred it from a refusal (an older server that never says), and ``since``
    is when that refusal came. The adds refused meanwhile stay pending: the link sends
    them again by itself when the store is back, with the same op ids.
    """

    status: StoreStatus
    told: bool = True


@dataclass
class LatencyMeasured:
    seconds: float


@dataclass
class PendingChanged:
    """The server settled one of our adds (acknowledged it, or refused it for good): fewer are pending.

    Never posted for an add the app itself made or dropped: it knows that already.
    """


Event = (
    Connecting
    | Connected
    | LedgerChanged
    | ConnectionLost
    | GaveUp
    | UpdatesArrived
    | PresenceChanged
    | OnlineChanged
    | ClientsPageArrived
    | HistoryArrived
    | ServerRefused
    | StoreChanged
    | AddAcknowledged
    | LatencyMeasured
    | PendingChanged
)

# Floods of these say the same thing again: only the newest of a run waiting to be handled matters.
REPLACEABLE: tuple[type[Event], ...] = (LatencyMeasured, PendingChanged)
