"""The one place that sends to every dashboard."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from server.protocol import ServerMessage, Welcome, encode, encode_batch, encode_welcomes

__all__ = ["MAX_MESSAGES_PER_FRAME", "PRESENCE_DELAY", "Fanout", "frame_header", "text_frame"]

log = logging.getLogger("tally.server")

# Presence may wait this long to share a frame with others; updates never wait.
PRESENCE_DELAY = 0.02
# Messages per frame at most: big enough to make a burst cheap, small enough that
# the backlog check between frames keeps a stalled client near its bound.
MAX_MESSAGES_PER_FRAME = 100


def frame_header(length: int) -> bytes:
    """The header of an unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


def text_frame(text: str) -> bytes:
    """One complete text frame."""
    payload = text.encode()
    return frame_header(len(payload)) + payload


class Fanout:
    """The dashboards subscribed to updates and presence on this server.

    Messages are queued and flushed together as one frame (a JSON array) that
    is built once and written, as the same bytes, to every open connection
    without waiting: a burst of updates costs one write per client, not one
    per update, and a slow client never delays the others. Updates are flushed
    as soon as the event loop is free; presence may wait ``PRESENCE_DELAY`` to
    share a frame, which is what keeps a join storm to a few frames a client.

    Messages for one connection (acks) go out at the same flush, after the
    published ones, batched per connection.

    Clients that join are welcomed at a flush, all from one welcome built
    then, and subscribed right after it: every later message reaches them,
    none that the welcome already covers.

    There is no backpressure, so the same loop bounds memory: a connection
    whose unsent backlog is past ``max_buffer`` (plus the size of a welcome,
    which may be larger) is not reading, and is dropped. Keepalive alone would
    not do: with a full buffer its pongs never get through, and it takes 25 s
    to time out while the backlog grows.
    """

    def __init__(self, current_welcome: Callable[[], Welcome], *, max_buffer: int) -> None:
        self.current_welcome = current_welcome
        self.max_buffer = max_buffer
        self.connections: set[ServerConnection] = set()
        self._queue: list[str] = []
        self._direct: dict[ServerConnection, list[str]] = {}
        self._joining: dict[ServerConnection, str] = {}
        self._flush: asyncio.Handle | None = None
        self._flush_soon = False
        # A welcome carries everyone and can outgrow max_buffer on its own (about 1 MB at
        # 10,000 clients); the backlog allowed is max_buffer on top of the latest one.
        self._welcome_size = 0

    def welcome(self, connection: ServerConnection, client_id: str) -> None:
        """Welcome ``connection`` at the next flush, then keep it subscribed."""
        self._joining[connection] = client_id
        self._schedule(soon=False)

    def unsubscribe(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)
        self._joining.pop(connection, None)
        self._direct.pop(connection, None)

    def send(self, connection: ServerConnection, message: ServerMessage) -> None:
        """Queue ``message`` for one connection, after everything published before it."""
        self._direct.setdefault(connection, []).append(encode(message))
        self._schedule(soon=True)

    def publish(self, message: ServerMessage, *, soon: bool = True) -> None:
        """Queue ``message`` for everyone; ``soon=False`` lets it wait a little for company."""
        self._queue.append(encode(message))
        self._schedule(soon=soon)

    def _schedule(self, *, soon: bool) -> None:
        if soon and not self._flush_soon:
            if self._flush is not None:
                self._flush.cancel()
            self._flush = asyncio.get_running_loop().call_soon(self.flush)
            self._flush_soon = True
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(PRESENCE_DELAY, self.flush)

    def flush(self) -> None:
        """Send everything published, welcome whoever is joining, then answer individuals."""
        if self._flush is not None:
            self._flush.cancel()
        self._flush, self._flush_soon = None, False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_MESSAGES_PER_FRAME):
            frame = (text_frame(encode_batch(queue[start : start + MAX_MESSAGES_PER_FRAME])),)
            self._write([(connection, frame) for connection in self.connections])
        if self._joining:
            joining, self._joining = self._joining, {}
            heads, body = encode_welcomes(self.current_welcome(), list(joining.values()))
            # The body (everyone, in a storm ~100 bytes each) is the same bytes object for
            # every joiner: the kernel copies it, Python does not.
            shared = body.encode()
            frames = []
            for connection, head in zip(joining, heads, strict=True):
                own = head.encode()
                frames.append((connection, (frame_header(len(own) + len(shared)) + own, shared)))
            self._welcome_size = len(shared)
            self._write(frames)
            # Not those just dropped: an aborted transport reports closing at once, but its
            # protocol stays OPEN until the loop runs connection_lost.
            self.connections.update(
                c for c in joining if c.protocol.state is State.OPEN and not c.transport.is_closing()
            )
        # Last, so an answer to a client that is just joining follows its welcome.
        direct, self._direct = self._direct, {}
        for connection, texts in direct.items():
            for start in range(0, len(texts), MAX_MESSAGES_PER_FRAME):
                self._write([(connection, (text_frame(encode_batch(texts[start : start + MAX_MESSAGES_PER_FRAME])),))])

    def _write(self, frames: Iterable[tuple[ServerConnection, tuple[bytes, ...]]]) -> None:
        """Write each frame, given as its parts, unless its connection is stalled."""
        stalled = []
        for connection, parts in frames:
            # Whole frames only, and only while open: nothing else of ours is ever
            # fragmented, so these bytes cannot land inside another frame.
            if connection.protocol.state is not State.OPEN:
                continue
            transport = connection.transport
            if transport.get_write_buffer_size() > self.max_buffer + self._welcome_size:
                stalled.append(connection)
            else:
                for part in parts:
                    transport.write(part)
        for connection in stalled:
            self.drop(connection)

    def drop(self, connection: ServerConnection) -> None:
        """Abort a connection that does not read (a close frame would queue behind its backlog)."""
        log.warning(
            "drop   %s: not reading (%d bytes unsent)",
            connection.remote_address,
            connection.transport.get_write_buffer_size(),
        )
        self.unsubscribe(connection)
        connection.transport.abort()
