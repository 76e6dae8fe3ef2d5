"""The one place that sends to every dashboard."""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import ServerConnection, broadcast

from server.protocol import ServerMessage, encode

__all__ = ["Fanout"]

log = logging.getLogger("tally.server")


class Fanout:
    """The dashboards subscribed to updates and presence on this server.

    ``publish`` encodes once and writes to every socket without waiting, so a
    slow client never delays the others. There is no backpressure, so
    ``drop_slow_consumers`` watches the write buffers: keepalive alone would
    let a client that stops reading grow its buffer for the 25 s it takes to
    time out, and with a full buffer its pongs never get through anyway.
    """

    def __init__(self) -> None:
        self.connections: set[ServerConnection] = set()

    def subscribe(self, connection: ServerConnection) -> None:
        self.connections.add(connection)

    def unsubscribe(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)

    def publish(self, message: ServerMessage) -> None:
        broadcast(self.connections, encode(message))

    async def drop_slow_consumers(self, max_buffer: int, *, every: float = 0.2) -> None:
        """Forever: abort connections whose unsent data exceeds ``max_buffer`` bytes.

        Aborting (not closing) because a close frame would queue behind the
        backlog. The client reconnects and resynchronises from a snapshot.
        """
        while True:
            await asyncio.sleep(every)
            for connection in list(self.connections):
                backlog = connection.transport.get_write_buffer_size()
                if backlog > max_buffer:
                    log.warning("drop   %s: not reading (%d bytes unsent)", connection.remote_address, backlog)
                    self.connections.discard(connection)
                    connection.transport.abort()
