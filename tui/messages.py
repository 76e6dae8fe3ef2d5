"""What the connection tells the app: past-tense facts, posted from the connection worker."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tally.server.protocol import ClientsPage, Error, HistoryPage, Online, Presence, Update, Welcome
from tally.tui.pending import PendingAdd

__all__ = [
    "AddAcknowledged",
    "ClientsPageArrived",
    "Connected",
    "Connecting",
    "ConnectionLost",
    "GaveUp",
    "HistoryArrived",
    "LatencyMeasured",
    "LedgerChanged",
    "LeftoversSent",
    "OnlineChanged",
    "PendingChanged",
    "PresenceChanged",
    "ServerRefused",
    "UpdatesArrived",
]


@dataclass
class Connecting(Message):
    """An attempt to reach the server has started."""

    url: str
    attempt: int


@dataclass
class Connected(Message):
    """The server welcomed us: a full snapshot to replace whatever we showed."""

    welcome: Welcome


@dataclass
class LedgerChanged(Message):
    """The server at this address now holds a different ledger than the one our pending adds are for.

    None of them was sent; the app asks the user what to do (see ``Link.keep_for_other_ledger``).
    """

    expected: str
    found: str
    pending: int


@dataclass
class ConnectionLost(Message):
    """The connection dropped or could not be made; we will retry at ``retry_at`` (monotonic)."""

    reason: str
    retry_at: float
    attempt: int


@dataclass
class GaveUp(Message):
    """The server refused us in a way retrying will not fix; waiting for the user."""

    reason: str


@dataclass
class UpdatesArrived(Message):
    """Updates in seq order, gathered so a flood repaints at a bounded rate."""

    updates: list[Update]


@dataclass
class PresenceChanged(Message):
    """Joins, leaves and renames that arrived together, in order."""

    presences: list[Presence]


@dataclass
class OnlineChanged(Message):
    online: Online


@dataclass
class ClientsPageArrived(Message):
    page: ClientsPage


@dataclass
class HistoryArrived(Message):
    page: HistoryPage


@dataclass
class ServerRefused(Message):
    """The server answered one of our messages with an error; ``add`` is the add it refused, if one was."""

    error: Error
    add: PendingAdd | None = None


@dataclass
class AddAcknowledged(Message):
    """One of our adds is stored, as update ``seq``."""

    add: PendingAdd
    seq: int


@dataclass
class LeftoversSent(Message):
    """Adds left by an earlier dashboard that quit or died were sent (``count`` of them)."""

    count: int


@dataclass
class LatencyMeasured(Message):
    seconds: float


@dataclass
class PendingChanged(Message):
    """An add was typed, acknowledged or refused: the model's pending adds changed."""
