"""What the dashboard sends: each add's life, typed → on disk → queued → sent → settled, in one place.

Sans-I/O, like the inbox: no loop, no clock, no socket. :class:`tui.link.Link`
calls it and owns every timer and the socket; this module decides what goes
out next and keeps the one rule that matters for a crash: an add is written to
disk before it can reach the server (:meth:`Outbox.next_message`), so a
dashboard killed at any moment leaves every add it may have sent on disk, to
be resent under the same op id and counted once.

Each add goes out under the name it was typed under: when that is not the name
the server has for this session, a rename goes first (and the current name
again once those adds are out). While the server's store is away the outbox is
*paused*: adds wait (those the server refused "not now" included), requests
still go, and a probe lets one add through now and then, for a server that never
says the store is back.

The adds themselves live in :class:`~tui.pending.Pending` (the journal's
format); the outbox is the only code that adds, settles or drops them.
"""

from __future__ import annotations

from collections import deque

from tally.server.protocol import Add, ClientsRequest, HistoryRequest, Rename
from tally.tui.pending import Pending, PendingAdd

__all__ = ["Outbox", "Request"]

Request = ClientsRequest | HistoryRequest


class Outbox:
    def __init__(self, pending: Pending, name: str = "anonymous") -> None:
        self.pending = pending
        self.name = name  # the name this dashboard goes by now (new adds are typed under it)
        # Set at a welcome when the pending adds are meant for another ledger than the server's:
        # none of them is sent until the user chooses (keep them aside, or discard them).
        self.held = False
        # Op ids typed here and not sent yet. Every other pending add may have reached the server
        # (sent by this dashboard, or by an earlier one that left it on disk), and may have counted.
        # Only ever as large as what waits to be sent, unlike a record of everything sent.
        self.unsent: set[str] = set()
        # The store is away: adds wait (see pause). Parked: refused "not now", to go again when it is back.
        self.paused = False
        self._parked: list[str] = []
        self._probe = False  # one add may go while paused
        self._adds: deque[str] = deque()  # op ids, in the order typed (the amount is read when it goes)
        self._requests: deque[Request] = deque()
        self._said = name  # the name the server has for this session
        self._open = False  # a session is welcomed: what is typed now is queued at once

    # -- typed --------------------------------------------------------------------------

    def add(self, amount: int, *, text: str = "", undo: str | None = None, at: float | None = None) -> PendingAdd:
        """A newly typed add: pending from now on, and queued if a session is open (else at the next welcome)."""
        add = self.pending.add(amount, text=text, undo=undo, at=at, name=self.name)
        self.unsent.add(add.op)
        if self._open and not self.held:
            self._adds.append(add.op)
        return add

    def rename(self, name: str) -> None:
        """From now on this dashboard goes by ``name``: adds typed before keep theirs, the server is told after them."""
        self.name = name

    def request(self, message: Request) -> bool:
        """Queue a request for this session only; False (dropped) if none is open."""
        if self._open:
            self._requests.append(message)
        return self._open

    # -- on disk --------------------------------------------------------------------------

    def save(self) -> None:
        """Write the pending adds to disk if anything changed (typed, settled, bound to a ledger)."""
        self.pending.save()

    # -- queued -------------------------------------------------------------------------

    def hello_name(self) -> str:
        """The name a new session says in its hello: the server has it from then on."""
        self._said = self.name
        return self.name

    def welcomed(self, ledger: str) -> bool:
        """A session opened on ``ledger``: queue every pending add meant for it. True if they are held instead."""
        pending = self.pending
        self._adds.clear()  # a new session resends everything: nothing of the last one stays queued
        self._requests.clear()
        self.held = bool(pending) and pending.ledger not in ("", ledger)
        if not self.held:
            pending.bind(ledger)
            self._adds.extend(add.op for add in pending)
        pending.save()
        self._open = True
        return self.held

    def closed(self) -> None:
        """The session ended: nothing more goes out until the next welcome (which resends every add)."""
        self._open = False
        self._adds.clear()
        self._requests.clear()
        self._parked.clear()
        self.paused = self._probe = False

    def retry(self, op: str) -> None:
        """Send ``op`` again in this session (refused "slow down"): if it is still pending."""
        if self._open and op in self.pending:
            self._adds.append(op)

    # -- the store away ---------------------------------------------------------------------

    def pause(self) -> None:
        """The store cannot take adds now: keep them until :meth:`resume` (requests still go)."""
        self.paused = True

    def park(self, op: str) -> None:
        """``op`` was refused "not now" (nothing was stored): it goes again, first, when the store is back."""
        self.pause()
        if self._open and op in self.pending and op not in self._parked:
            self._parked.append(op)

    def resume(self) -> None:
        """The store takes adds again: everything waiting goes, in the order typed."""
        self._gather()
        self.paused = self._probe = False

    def probe(self) -> bool:
        """While paused, let the oldest waiting add go, to learn whether the store is back. False if none waits."""
        self._gather()
        self._skip_settled()
        if not self.paused or not self._adds:
            return False
        self._probe = True
        return True

    def _gather(self) -> None:
        """Put the parked adds back among the queued ones, all in the order they were typed."""
        if self._parked:
            waiting = set(self._parked) | set(self._adds)
            self._adds = deque(add.op for add in self.pending if add.op in waiting)
            self._parked.clear()

    @property
    def waiting(self) -> int:
        """How many adds are pending (each waits for the server's ack)."""
        return len(self.pending)

    # -- sent -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True if something waits to be sent now (settled adds are skipped)."""
        return self._next() is not None

    @property
    def add_is_next(self) -> bool:
        """True if the next message is an add (the link paces adds to the server's rate)."""
        return isinstance(self._next(), str)

    def _next(self) -> str | Request | Rename | None:
        """What goes next, without taking it: a request, an add (its op id), or a rename."""
        if self._requests:
            return self._requests[0]
        self._skip_settled()
        if self._adds and (not self.paused or self._probe):
            add = self.pending.get(self._adds[0])
            assert add is not None  # _skip_settled
            name = add.name or self.name
            return add.op if name == self._said else Rename(name=name)
        if self._open and self._said != self.name and not (self._adds or self._parked):
            return Rename(name=self.name)  # every add typed under the old name is out
        return None

    def next_message(self) -> Add | Request | Rename | None:
        """The next message to send, or None. An add is on disk before it leaves here, and counts as sent."""
        item = self._next()
        if item is None:
            return None
        if isinstance(item, Rename):
            self._said = item.name
            return item
        if not isinstance(item, str):
            return self._requests.popleft()
        self._adds.popleft()
        self._probe = False
        add = self.pending.get(item)
        assert add is not None  # _next skipped the settled ones
        self.pending.save()  # on disk before it can reach the server: the one place this is done
        self.unsent.discard(add.op)  # before: a send cut short may still have reached the server
        return Add(op=add.op, amount=add.amount, undo=add.undo)

    def _skip_settled(self) -> None:
        # An add acked meanwhile (a resend racing its first ack) need not go again.
        while self._adds and self._adds[0] not in self.pending:
            self._adds.popleft()

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
        self._adds.clear()
        self._parked.clear()
