"""What the server says during a session, turned into the link's events, in order.

Sans-I/O: no loop, no clock of its own, no socket. :class:`tui.link.Link`
hands it each decoded message and owns the timers it asks for: updates are
batched (``take`` returns :class:`FlushAt` for the first of a batch, and the
link calls :meth:`Inbox.flush` then, the latest total winning), anything else
is posted after the updates that came before it, and acks and refusals settle
the pending adds through the outbox (a refusal that says "not now" returns
:class:`ResendAfter` instead).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tally.server.protocol import (
    Ack,
    ClientsPage,
    Error,
    ErrorCode,
    HistoryPage,
    Online,
    Presence,
    Resume,
    ServerMessage,
    Update,
    Welcome,
)
from tally.tui.messages import (
    AddAcknowledged,
    ClientsPageArrived,
    Event,
    HistoryArrived,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tally.tui.outbox import Outbox
from tally.tui.retry import Resync

__all__ = ["FLUSH_INTERVAL", "RETRY_LATER", "FlushAt", "Inbox", "ResendAfter", "Resync"]

# Repaint at most this often when updates pour in; the latest total always wins. Ten a
# second reads as live, and each repaint costs the dashboard a layout of the screen.
FLUSH_INTERVAL = 1 / 10
# Refusals that say "not now": the add stays pending and goes again after this long.
RETRY_LATER: Mapping[str, float] = {ErrorCode.UNAVAILABLE: 2.0, ErrorCode.RATE_LIMITED: 1.0}


@dataclass(frozen=True, slots=True)
class FlushAt:
    """Call :meth:`Inbox.flush` at ``when`` (on the inbox's clock): updates wait for the next repaint."""

    when: float


@dataclass(frozen=True, slots=True)
class ResendAfter:
    """Send add ``op`` again after ``delay`` seconds, in this session (the server said "not now")."""

    op: str
    delay: float


Timer = FlushAt | ResendAfter


class Inbox:
    def __init__(
        self,
        outbox: Outbox,
        post: Callable[[Event], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        flush_interval: float = FLUSH_INTERVAL,
        retry_later: Mapping[str, float] = RETRY_LATER,
    ) -> None:
        self.outbox = outbox
        self.post = post
        self.clock = clock
        self.flush_interval = flush_interval
        self.retry_later = retry_later
        # Where the stream we follow stands: the next hello resumes from here.
        self.ledger, self.epoch, self.seq = "", 0, 0
        self._updates: list[Update] = []
        self._presence: list[Presence] = []

    def welcomed(self, welcome: Welcome) -> None:
        """A new session: the stream starts again at the welcome's seq."""
        self.ledger, self.epoch, self.seq = welcome.ledger, welcome.epoch, welcome.seq

    def resume(self) -> Resume | None:
        """What the next hello asks for: the updates after the last one received (None before any welcome)."""
        return Resume(self.ledger, self.epoch, self.seq) if self.ledger else None

    def take(self, message: ServerMessage) -> Timer | None:
        """One message, in the order received; raises :class:`Resync` on a gap in seq. Returns a timer to set."""
        if isinstance(message, Update):
            if message.seq <= self.seq:
                return None  # already shown
            if message.seq != self.seq + 1:
                raise Resync(f"expected seq {self.seq + 1}, got {message.seq}")
            self.seq = message.seq
            self._updates.append(message)
            first = len(self._updates) == 1
            return FlushAt(self.clock() + self.flush_interval) if first else None
        # Anything else is shown after the updates that came before it.
        self.flush()
        if isinstance(message, Ack):
            add = self.outbox.settle(message.op)
            if add is not None:
                self.post(AddAcknowledged(add, message.seq))
                self.post(PendingChanged())
        elif isinstance(message, Error):
            return self._refused(message)
        elif isinstance(message, Presence):
            self._presence.append(message)  # posted together, at the end of the frame
        elif isinstance(message, Online):
            self.post(OnlineChanged(message))
        elif isinstance(message, ClientsPage):
            self.post(ClientsPageArrived(message))
        elif isinstance(message, HistoryPage):
            self.post(HistoryArrived(message))
        return None

    def end_of_frame(self) -> None:
        """The joins and leaves of one frame go out together."""
        if self._presence:
            self.post(PresenceChanged(self._presence))
            self._presence = []

    def _refused(self, error: Error) -> ResendAfter | None:
        add = None if error.op is None else self.outbox.pending.get(error.op)
        if add is None:
            self.post(ServerRefused(error))
            return None
        delay = self.retry_later.get(error.code)
        if delay is not None:
            # Nothing was stored; the same op id is safe to send again shortly.
            self.post(ServerRefused(error, add))
            return ResendAfter(add.op, delay)
        self.outbox.settle(add.op)
        self.post(PendingChanged())
        self.post(ServerRefused(error, add, settled=True))
        return None

    def flush(self) -> None:
        """Post the updates waiting for the next repaint, now (a pending :class:`FlushAt` then finds none)."""
        if self._updates:
            self.post(UpdatesArrived(self._updates))
            self._updates = []
