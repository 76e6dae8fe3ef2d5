"""The one place that sends to every dashboard."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from tally.server.connection import TallyConnection
from tally.server.protocol import (
    Online,
    Presence,
    ServerMessage,
    StoreStatus,
    Welcome,
    encode,
    encode_batch,
    encode_welcomes,
)

if TYPE_CHECKING:
    from tally.server.monitoring import Metrics

__all__ = ["MAX_MESSAGES_PER_FRAME", "PRESENCE_DELAY", "Fanout", "frame_header", "text_frame"]

log = logging.getLogger("tally.server")

# Presence may wait this long to share a frame with others; updates never wait.
PRESENCE_DELAY = 0.02
# In a large room the count is sent at most this often (it rides along with updates anyway).
COUNT_INTERVAL = 1.0
# Messages per frame at most: big enough to make a burst cheap, small enough that
# the backlog check between frames keeps a stalled client near its bound.
MAX_MESSAGES_PER_FRAME = 100
# What a connection is sent at one flush goes in one write up to this size (one system call
# instead of one a frame); past it, frame by frame, so that a large shared body is not copied.
JOIN_LIMIT = 64 * 1024
VERSIONS = (1, 2)


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


# A message for one connection, or a builder that makes it at the flush (a page of the
# clients list must reflect every presence event sent before it, in the same frame).
Direct = ServerMessage | Callable[[], ServerMessage]


@dataclass
class _Out:
    """What one connection is sent at one flush, in order: whole frames, a frame perhaps in two parts."""

    frames: int = 0
    parts: list[bytes] = field(default_factory=list)


@dataclass
class _Joiner:
    version: int
    # Built at the flush, with the shared part: only the joiner's own fields are used
    # (see encode_welcomes); what it missed must run up to the welcome's seq.
    personal: Callable[[], Welcome]


class Fanout:
    """The dashboards subscribed to updates and presence on this server, by protocol version.

    Messages are queued and flushed together as one frame (a JSON array) per
    protocol version, built once and written, as the same bytes, to every open
    connection of that version without waiting: a burst of updates costs one
    write per client, not one per update, and a slow client never delays the
    others. Updates are flushed as soon as the event loop is free; presence
    may wait ``PRESENCE_DELAY`` to share a frame, which is what keeps a join
    storm to a few frames a client. Presence events of one client still
    waiting to be sent are coalesced: a join and a leave cancel out, renames
    fold into the latest.

    v2 dashboards get joins, leaves and renames only while the room is live;
    otherwise the count (:class:`Online`), at most every ``COUNT_INTERVAL``.

    Messages for one connection (acks, answers to requests) go out at the same
    flush, after the published ones, batched per connection; what a connection is
    sent at one flush is one write while it is small (``JOIN_LIMIT``).

    Clients that join are welcomed at a flush, all from one welcome built
    then, and subscribed right after it: every later message reaches them,
    none that the welcome already covers.

    There is no backpressure, so the same loop bounds memory: a connection
    whose unsent backlog is past ``max_buffer`` (plus the size of a welcome)
    is not reading, and is dropped.
    """

    def __init__(
        self,
        current_welcome: Callable[[int], Welcome],
        count: Callable[[], tuple[int, bool]],
        metrics: Metrics | None = None,
    ) -> None:
        """``current_welcome`` builds what joiners share; ``count`` is how many people are online and whether
        the room is live (its joins and leaves sent one by one)."""
        self.current_welcome = current_welcome
        self.count = count
        self.metrics = metrics
        self.subscribers: dict[int, set[ServerConnection]] = {version: set() for version in VERSIONS}
        self._queue: list[ServerMessage] = []
        # Clients with a presence event in the queue: only theirs can coalesce, so a join (or a
        # leave) of anyone else is queued without scanning the queue, which a storm makes long.
        self._queued_presence: set[str] = set()
        self._direct: dict[ServerConnection, list[Direct]] = {}
        self._joining: dict[ServerConnection, _Joiner] = {}
        self._flush: asyncio.Handle | None = None
        self._flush_soon = False
        self._sent_count: tuple[int, bool] = (0, True)
        self._count_timer: asyncio.TimerHandle | None = None
        self._count_sent_at = float("-inf")
        # A welcome can outgrow max_buffer on its own; the backlog allowed is max_buffer on top of the latest one.
        self._welcome_size = 0
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> set[ServerConnection]:
        return self.subscribers[1] | self.subscribers[2]

    def welcome(self, connection: ServerConnection, personal: Callable[[], Welcome], version: int) -> None:
        """Welcome ``connection`` at the next flush (``personal`` builds its own fields), then keep it subscribed."""
        self._joining[connection] = _Joiner(version, personal)
        self._schedule(soon=False)

    def close_all(self, reason: str) -> None:
        """Close every subscribed connection (code 1012: reconnect), e.g. so that each resynchronises.

        Nothing more is sent to them meanwhile (each resynchronises from a snapshot; an ack not sent
        is sent again for the same op): a message queued before the close frame would tell a
        dashboard about the ledger it is about to leave.
        """
        for connection in list(self.connections):
            self.unsubscribe(connection)
            transport = connection.transport
            if connection.protocol.state is State.OPEN and not transport.is_closing():
                task = asyncio.get_running_loop().create_task(_close(connection, reason))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def unsubscribe(self, connection: ServerConnection) -> None:
        for subscribers in self.subscribers.values():
            subscribers.discard(connection)
        self._joining.pop(connection, None)
        self._direct.pop(connection, None)

    def send(self, connection: ServerConnection, message: Direct) -> None:
        """Queue ``message`` for one connection, after everything published before it."""
        self._direct.setdefault(connection, []).append(message)
        self._schedule(soon=True)

    def publish(self, message: ServerMessage, *, soon: bool = True) -> None:
        """Queue ``message`` for everyone; ``soon=False`` lets it wait a little for company."""
        if isinstance(message, Presence):
            if message.client.id in self._queued_presence and self._coalesce(message):
                return
            self._queued_presence.add(message.client.id)
        self._queue.append(message)
        self._schedule(soon=soon)

    def _coalesce(self, presence: Presence) -> bool:
        """Fold ``presence`` into an unsent event of the same client; True if nothing more is to be queued."""
        for index in range(len(self._queue) - 1, -1, -1):
            earlier = self._queue[index]
            if not isinstance(earlier, Presence) or earlier.client.id != presence.client.id:
                continue
            if presence.event == "left":
                if earlier.event == "joined":
                    del self._queue[index]  # nobody ever saw it: say nothing
                    self._queued_presence.discard(presence.client.id)
                    return True
                self._queue[index] = presence
                return True
            # A rename: the earlier join or rename now carries the latest name.
            self._queue[index] = Presence(event=earlier.event, client=presence.client)
            return True
        return False

    def _schedule(self, *, soon: bool) -> None:
        if soon and not self._flush_soon:
            if self._flush is not None:
                self._flush.cancel()
            self._flush = asyncio.get_running_loop().call_soon(self.flush)
            self._flush_soon = True
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(PRESENCE_DELAY, self.flush)

    def _count_message(self, loop_time: float, others: bool) -> Online | None:
        """The count for v2 dashboards, if it changed and it is time to say so."""
        count = self.count()
        if count == self._sent_count:
            return None
        live_changed = count[1] != self._sent_count[1]
        if not (count[1] or live_changed or others or loop_time - self._count_sent_at >= COUNT_INTERVAL):
            # Not yet: look again when the interval is up (a timer of its own, so that it never
            # holds back a flush that welcomes or answers someone).
            if self._count_timer is None:
                delay = COUNT_INTERVAL - (loop_time - self._count_sent_at)
                self._count_timer = asyncio.get_running_loop().call_later(delay, self._count_due)
            return None
        self._sent_count, self._count_sent_at = count, loop_time
        return Online(count=count[0], live=count[1])

    def _count_due(self) -> None:
        self._count_timer = None
        self.flush()

    def flush(self) -> None:
        """Send everything published, welcome whoever is joining, then answer individuals."""
        if self._flush is not None:
            self._flush.cancel()
        self._flush, self._flush_soon = None, False
        queue, self._queue = self._queue, []
        self._queued_presence.clear()
        out: dict[ServerConnection, _Out] = {}
        live = self.count()[1]
        for version, subscribers in self.subscribers.items():
            # v1 dashboards always get every presence event (and know no store states); v2 ones only in a live room.
            messages: list[ServerMessage]
            if version == 1:
                messages = [m for m in queue if not isinstance(m, StoreStatus)]
            else:
                messages = [m for m in queue if live or not isinstance(m, Presence)]
            # With nobody subscribed yet the count reaches nobody: it must not count as sent here (the
            # joiners of this flush have it in their welcomes, see _welcome_all), or the first dashboards
            # to be welcomed would wait COUNT_INTERVAL for a change that came just after.
            if version >= 2 and subscribers:
                count = self._count_message(asyncio.get_running_loop().time(), bool(messages))
                if count is not None:
                    messages.append(count)
            if not subscribers or not messages:
                continue
            frames = _frames([encode(message, version) for message in messages])
            for connection in subscribers:
                out[connection] = _Out(len(frames), frames)  # one list for all: never changed in place
        if self._joining:
            self._welcome_all(out)
        # Last, so an answer to a client that is just joining follows its welcome.
        direct, self._direct = self._direct, {}
        for connection, items in direct.items():
            version = connection.version if isinstance(connection, TallyConnection) else 2
            frames = _frames([encode(item() if callable(item) else item, version) for item in items])
            sent = out.setdefault(connection, _Out())
            sent.frames += len(frames)
            sent.parts = sent.parts + frames
        self._write(out)

    def _welcome_all(self, out: dict[ServerConnection, _Out]) -> None:
        joining, self._joining = self._joining, {}
        for version in VERSIONS:
            joiners = [(c, j) for c, j in joining.items() if j.version == version]
            if not joiners:
                continue
            heads, body = encode_welcomes(self.current_welcome(version), [j.personal() for _, j in joiners], version)
            # The body (in a live room, everyone) is the same bytes object for every
            # joiner: the kernel copies it, Python does not.
            body_bytes = body.encode()
            for (connection, _), head in zip(joiners, heads, strict=True):
                own = head.encode()
                # A joiner is not subscribed yet: nothing published at this flush is for it.
                out[connection] = _Out(1, [frame_header(len(own) + len(body_bytes)) + own, body_bytes])
            self._welcome_size = max(self._welcome_size, len(body_bytes))
            if version >= 2 and not self.subscribers[version]:
                # The first ones: everyone subscribed now knows the count from the welcome, so it
                # need not follow in a message of its own.
                self._sent_count = self.count()
            # Not those dropped already: an aborted transport reports closing at once, but its
            # protocol stays OPEN until the loop runs connection_lost (one dropped when written
            # is unsubscribed then).
            self.subscribers[version].update(
                c for c, _ in joiners if c.protocol.state is State.OPEN and not c.transport.is_closing()
            )

    def _write(self, out: dict[ServerConnection, _Out]) -> None:
        """Write what each connection is sent, unless it is stalled: in one write up to ``JOIN_LIMIT``, else
        part by part with the backlog checked before each (a large body is then written, not copied)."""
        stalled = []
        written = sent = 0
        for connection, what in out.items():
            # Whole frames only, and only while open: nothing else of ours is ever
            # fragmented, so these bytes cannot land inside another frame.
            if connection.protocol.state is not State.OPEN or connection.transport.is_closing():
                continue
            parts, size = what.parts, sum(map(len, what.parts))
            if size <= JOIN_LIMIT and len(parts) > 1:
                parts = [b"".join(parts)]
            for part in parts:
                if isinstance(connection, TallyConnection) and connection.check_backlog(self._welcome_size):
                    stalled.append(connection)
                    break
                connection.transport.write(part)
                sent += len(part)
            else:
                written += what.frames
        if self.metrics is not None:
            self.metrics.fanout_frames.inc(written)
            self.metrics.fanout_bytes.inc(sent)
            if stalled:
                self.metrics.dropped.labels("slow").inc(len(stalled))
        for connection in stalled:
            log.warning("drop   %s: %s", connection.remote_address, connection.closing_reason, extra={"event": "drop"})
            self.unsubscribe(connection)


def _frames(texts: list[str]) -> list[bytes]:
    """Messages as text frames of JSON arrays, at most MAX_MESSAGES_PER_FRAME to a frame."""
    return [text_frame(encode_batch(texts[start : start + MAX_MESSAGES_PER_FRAME]))
            for start in range(0, len(texts), MAX_MESSAGES_PER_FRAME)]  # fmt: skip


async def _close(connection: ServerConnection, reason: str) -> None:
    try:
        await connection.close(1012, reason)
    except Exception as exc:  # it went away meanwhile
        log.debug("close: %s", exc)
