"""The one place that sends to every dashboard."""

from __future__ import annotations

import logging
import struct

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from server.protocol import ServerMessage, encode

__all__ = ["Fanout", "text_frame"]

log = logging.getLogger("tally.server")


def text_frame(text: str) -> bytes:
    """One complete, unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class Fanout:
    """The dashboards subscribed to updates and presence on this server.

    ``publish`` frames a message once and writes the same bytes to every open
    connection without waiting, so a slow client never delays the others.
    There is no backpressure, so the same loop bounds memory: a connection
    whose unsent backlog is past ``max_buffer`` is not reading, and is
    dropped. Keepalive alone would not do: with a full buffer its pongs never
    get through, and it takes 25 s to time out while the backlog grows.
    """

    def __init__(self, *, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.connections: set[ServerConnection] = set()

    def subscribe(self, connection: ServerConnection) -> None:
        self.connections.add(connection)

    def unsubscribe(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)

    def publish(self, message: ServerMessage) -> None:
        frame = text_frame(encode(message))
        stalled = []
        for connection in self.connections:
            # Whole frames only, and only while open: nothing else of ours is ever
            # fragmented, so these bytes cannot land inside another frame.
            if connection.protocol.state is not State.OPEN:
                continue
            transport = connection.transport
            if transport.get_write_buffer_size() > self.max_buffer:
                stalled.append(connection)
            else:
                transport.write(frame)
        for connection in stalled:
            self.drop(connection)

    def drop(self, connection: ServerConnection) -> None:
        """Abort a connection that does not read (a close frame would queue behind its backlog)."""
        log.warning(
            "drop   %s: not reading (%d bytes unsent)",
            connection.remote_address,
            connection.transport.get_write_buffer_size(),
        )
        self.connections.discard(connection)
        connection.transport.abort()
