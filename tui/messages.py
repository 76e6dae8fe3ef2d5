"""What the connection tells the app: past-tense facts, posted from the connection worker."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from server.protocol import Error, Presence, Update, Welcome

__all__ = [
    "Connected",
    "Connecting",
    "ConnectionLost",
    "GaveUp",
    "LatencyMeasured",
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
    presence: Presence


@dataclass
class ServerRefused(Message):
    """The server answered one of our messages with an error."""

    error: Error


@dataclass
class LatencyMeasured(Message):
    seconds: float


@dataclass
class PendingChanged(Message):
    """An add was typed, acknowledged or refused: the model's pending adds changed."""
