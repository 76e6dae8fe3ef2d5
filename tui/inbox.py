"""What the server says during a session, turned into the app's messages, in order.

Pure of sockets: :class:`tui.connection.Link` hands it each decoded message.
Updates are batched (the app repaints at most ``FLUSH_INTERVAL`` apart, the
latest total winning), anything else is posted after the updates that came
before it, and acks and refusals settle the pending adds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.message import Message

from tally.server.protocol import (
    Ack,
    ClientsPage,
    Error,
    ErrorCode,
    HistoryPage,
    Online,
    Presence,
    ServerMessage,
    Update,
)
from tally.tui.messages import (
    AddAcknowledged,
    ClientsPageArrived,
    HistoryArrived,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tally.tui.model import Model
from tally.tui.pending import Pending

__all__ = ["FLUSH_INTERVAL", "RETRY_LATER", "Inbox", "Resync"]

# Repaint at most this often when updates pour in; the latest total always wins. Ten a
# second reads as live, and each repaint costs the dashboard a layout of the screen.
FLUSH_INTERVAL = 1 / 10
# Refusals that say "not now": the add stays pending and goes again after this long.
RETRY_LATER = {ErrorCode.UNAVAILABLE: 2.0, ErrorCode.RATE_LIMITED: 1.0}


class Resync(Exception):
    """We missed an update (a gap in seq): reconnect for a fresh snapshot."""


class Inbox:
    def __init__(self, model: Model, post: Callable[[Message], object], *, all_acked: Callable[[], None]) -> None:
        """``all_acked`` is called when an ack leaves nothing pending."""
        self.model = model
        self.post = post
        self.all_acked = all_acked
        self.seq = 0  # the last update received (the model has the last one shown)
        # Where an add refused "not now" goes again: the session's outbox, set at each welcome.
        self.resend: Callable[[str], None] = lambda op: None
        self._updates: list[Update] = []
        self._presence: list[Presence] = []
        self._flush: asyncio.TimerHandle | None = None
        self._save: asyncio.Handle | None = None

    @property
    def pending(self) -> Pending:
        return self.model.pending

    def take(self, message: ServerMessage) -> None:
        """One message, in the order received; raises :class:`Resync` on a gap in seq."""
        if isinstance(message, Update):
            if message.seq <= self.seq:
                return  # already shown
            if message.seq != self.seq + 1:
                raise Resync(f"expected seq {self.seq + 1}, got {message.seq}")
            self.seq = message.seq
            self._updates.append(message)
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)
            return
        # Anything else is shown after the updates that came before it.
        self.flush()
        if isinstance(message, Ack):
            add = self.pending.settle(message.op)
            if add is not None:
                self.save_soon()  # off the disk too, or a restart long after would resend it
                self.post(AddAcknowledged(add, message.seq))
                self.post(PendingChanged())
                if not self.pending:
                    self.all_acked()
        elif isinstance(message, Error):
            self._refused(message)
        elif isinstance(message, Presence):
            self._presence.append(message)  # posted together, at the end of the frame
        elif isinstance(message, Online):
            self.post(OnlineChanged(message))
        elif isinstance(message, ClientsPage):
            self.post(ClientsPageArrived(message))
        elif isinstance(message, HistoryPage):
            self.post(HistoryArrived(message))

    def end_of_frame(self) -> None:
        """The joins and leaves of one frame go to the app together."""
        if self._presence:
            self.post(PresenceChanged(self._presence))
            self._presence = []

    def _refused(self, error: Error) -> None:
        add = None if error.op is None else self.pending.get(error.op)
        if add is not None:
            delay = RETRY_LATER.get(error.code)
            if delay is not None:
                # Nothing was stored; the same op id is safe to send again shortly.
                asyncio.get_running_loop().call_later(delay, self.resend, add.op)
                self.post(ServerRefused(error, add))
                return
            self.pending.settle(add.op)
            self.save_soon()
            self.post(PendingChanged())
        self.post(ServerRefused(error, add))

    def save_soon(self) -> None:
        """Save the pending adds once the current burst (a paste, a frame of acks) has been taken."""
        if self._save is None:
            self._save = asyncio.get_running_loop().call_soon(self._save_now)

    def _save_now(self) -> None:
        self._save = None
        self.pending.save()

    def flush(self) -> None:
        """Post the updates waiting for the next repaint, now."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._updates:
            self.post(UpdatesArrived(self._updates))
            self._updates = []
