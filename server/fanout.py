"""The one place that sends to every dashboard."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection, broadcast

from server.protocol import ServerMessage, encode

__all__ = ["Fanout"]


class Fanout:
    """The dashboards subscribed to updates and presence on this server.

    ``publish`` encodes once and writes to every socket without waiting, so a
    slow client never delays the others. There is no backpressure: a client
    that stops reading accumulates a write buffer until keepalive drops it.
    """

    def __init__(self) -> None:
        self.connections: set[ServerConnection] = set()

    def subscribe(self, connection: ServerConnection) -> None:
        self.connections.add(connection)

    def unsubscribe(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)

    def publish(self, message: ServerMessage) -> None:
        broadcast(self.connections, encode(message))
