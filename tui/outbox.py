"""What the dashboard sends: each add's life, typed → on disk → queued → sent → settled, in one place.

Sans-I/O, like the inbox: no loop, no clock, no socket. :class:`tui.link.Link`
calls it and owns every timer and the socket; this module decides what goes
out next and keeps the one rule that matters for a crash: an add is written to
disk before it can reach the server (:meth:`Outbox.next_message`), so a
dashboard killed at any moment leaves every add it may have sent on disk, to
be resent under the same op id and counted once.

The adds themselves live in :class:`~tui.pending.Pending` (the journal's
format); the outbox is the only code that adds, settles or drops them.
"""

from __future__ import annotations

from collections import deque

from tally.server.protocol import Add, ClientsRequest, HistoryRequest, Rename
from tally.tui.pending import Pending, PendingAdd

__all__ = ["Outbox", "Request"]

Request = Rename | ClientsRequest | HistoryRequest
_Queued = str | Request  # an add's op id (its amount is read when it goes), or a message as it is


class Outbox:
    def __init__(self, pending: Pending) -> None:
        self.pending = pending
        # Set at a welcome when the pending adds are meant for another ledger than the server's:
        # none of them is sent until the user chooses (keep them aside, or discard them).
        self.held = False
        # Op ids typed here and not sent yet. Every other pending add may have reached the server
        # (sent by this dashboard, or by an earlier one that left it on disk), and may have counted.
        # Only ever as large as what waits to be sent, unlike a record of everything sent.
        self.unsent: set[str] = set()
        self._queue: deque[_Queued] = deque()
        self._open = False  # a session is welcomed: what is typed now is queued at once

    # -- typed --------------------------------------------------------------------------

    def add(self, amount: int, *, text: str = "", undo: str | None = None, at: float | None = None) -> PendingAdd:
        """A newly typed add: pending from now on, and queued if a session is open (else at the next welcome)."""
        add = self.pending.add(amount, text=text, undo=undo, at=at)
        self.unsent.add(add.op)
        if self._open and not self.held:
            self._queue.append(add.op)
        return add

    def request(self, message: Request) -> bool:
        """Queue a rename or a request for this session only; False (dropped) if none is open."""
        if self._open:
            self._queue.append(message)
        return self._open

    # -- on disk --------------------------------------------------------------------------

    def save(self) -> None:
        """Write the pending adds to disk if anything changed (typed, settled, bound to a ledger)."""
        self.pending.save()

    # -- queued -------------------------------------------------------------------------

    def welcomed(self, ledger: str) -> bool:
        """A session opened on ``ledger``: queue every pending add meant for it. True if they are held instead."""
        pending = self.pending
        self._queue.clear()  # a new session resends everything: nothing of the last one stays queued
        self.held = bool(pending) and pending.ledger not in ("", ledger)
        if not self.held:
            pending.bind(ledger)
            self._queue.extend(add.op for add in pending)
        pending.save()
        self._open = True
        return self.held

    def closed(self) -> None:
        """The session ended: nothing more goes out until the next welcome (which resends every add)."""
        self._open = False
        self._queue.clear()

    def retry(self, op: str) -> None:
        """Send ``op`` again in this session (refused "not now"): if it is still pending."""
        if self._open and op in self.pending:
            self._queue.append(op)

    # -- sent -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True if something waits to be sent (settled adds are skipped)."""
        self._skip_settled()
        return bool(self._queue)

    @property
    def add_is_next(self) -> bool:
        """True if the next message is an add (the link paces adds to the server's rate)."""
        self._skip_settled()
        return bool(self._queue) and isinstance(self._queue[0], str)

    def next_message(self) -> Add | Request | None:
        """The next message to send, or None. An add is on disk before it leaves here, and counts as sent."""
        self._skip_settled()
        if not self._queue:
            return None
        item = self._queue.popleft()
        if not isinstance(item, str):
            return item
        add = self.pending.get(item)
        assert add is not None  # _skip_settled
        self.pending.save()  # on disk before it can reach the server: the one place this is done
        self.unsent.discard(add.op)  # before: a send cut short may still have reached the server
        return Add(op=add.op, amount=add.amount, undo=add.undo)

    def _skip_settled(self) -> None:
        # An add acked meanwhile (a resend racing its first ack) need not go again.
        while self._queue and isinstance(self._queue[0], str) and self._queue[0] not in self.pending:
            self._queue.popleft()

    @property
    def may_have_counted(self) -> int:
        """How many pending adds may have reached the server (sent, here or by an earlier dashboard)."""
        return sum(1 for add in self.pending if add.op not in self.unsent)

    # -- settled --------------------------------------------------------------------------

    def settle(self, op: str) -> PendingAdd | None:
        """``op`` was acknowledged, or refused for good: no longer pending. None if it was not."""
        return self.pending.settle(op)

    def keep_for_other_ledger(self, fresh: Pending, ledger: str) -> Pending:
        """Set the held adds aside (they stay in their own journal) and carry on with ``fresh``; returns the old."""
        old, self.pending = self.pending, fresh
        fresh.bind(ledger)
        fresh.save()
        self.held = False
        self.unsent.clear()  # those were the held adds' op ids; the next ones start anew
        return old

    def discard(self, ledger: str | None = None) -> None:
        """Drop every pending add (the user chose so), and serve ``ledger`` if one is given."""
        self.pending.clear()
        if ledger is not None:
            self.pending.bind(ledger)
            self.held = False
        self.pending.save()
        self.unsent.clear()
        self._queue = deque(item for item in self._queue if not isinstance(item, str))
