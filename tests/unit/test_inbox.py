"""The dashboard's inbox: what the server says, turned into the link's events, without a socket or a clock."""

from __future__ import annotations

import pytest

from tally.server.protocol import Ack, Error, ErrorCode, Update, Welcome
from tally.tui.inbox import FlushAt, Inbox, ResendAfter, Resync
from tally.tui.messages import AddAcknowledged, Event, PendingChanged, ServerRefused, UpdatesArrived
from tally.tui.outbox import Outbox
from tally.tui.pending import Pending


def update(seq: int, total: int) -> Update:
    return Update(seq=seq, total=total, amount=1, name="bob", client="c1", op=None, at=0.0)


def inbox(now: list[float] | None = None) -> tuple[Inbox, list[Event]]:
    posted: list[Event] = []
    clock = now if now is not None else [0.0]
    box = Inbox(Outbox(Pending()), posted.append, clock=lambda: clock[0], flush_interval=0.1,
                retry_later={ErrorCode.RATE_LIMITED: 3.0})  # fmt: skip
    return box, posted


def test_updates_are_posted_together_before_what_follows_them() -> None:
    """Updates wait for the next repaint, asked for once, at the injected clock's now plus the interval."""
    now = [50.0]
    box, posted = inbox(now)
    assert box.take(update(1, 1)) == FlushAt(50.1)
    now[0] = 50.05
    assert box.take(update(2, 2)) is None, "one flush for the batch"
    assert box.take(update(2, 2)) is None  # a repeat is already shown
    assert posted == [], "batched until the next repaint"
    box.take(Error(ErrorCode.INVALID_NAME, "no"))
    arrived, refused = posted
    assert isinstance(arrived, UpdatesArrived) and [u.seq for u in arrived.updates] == [1, 2]
    assert isinstance(refused, ServerRefused)
    assert box.take(update(3, 3)) == FlushAt(50.15), "a new batch asks again"
    box.flush()
    assert isinstance(posted[-1], UpdatesArrived) and [u.seq for u in posted[-1].updates] == [3]


def test_a_gap_in_seq_asks_for_a_resync() -> None:
    """Update 3 after update 1: something was missed, and the link must fetch a fresh snapshot."""
    box, _ = inbox()
    box.take(update(1, 1))
    with pytest.raises(Resync):
        box.take(update(3, 3))


def test_the_stream_resumes_where_the_last_welcome_and_updates_left_it() -> None:
    """No resume before a welcome; after one, the ledger, epoch and the last update taken."""
    box, _ = inbox()
    assert box.resume() is None
    box.welcomed(Welcome(you="a", total=4, seq=4, clients=(), history=(), ledger="L1", epoch=2))
    box.take(update(5, 5))
    resume = box.resume()
    assert resume is not None and (resume.ledger, resume.epoch, resume.seq) == ("L1", 2, 5)


def test_an_ack_settles_its_add_once_and_says_the_pending_adds_changed() -> None:
    """The first ack settles the add and says so; a repeated ack settles nothing and says nothing."""
    box, posted = inbox()
    first, second = box.outbox.add(5), box.outbox.add(7)
    box.take(Ack(op=first.op, seq=1))
    box.take(Ack(op=first.op, seq=1))  # a repeated ack settles nothing
    assert [type(m) for m in posted] == [AddAcknowledged, PendingChanged]
    box.take(Ack(op=second.op, seq=2))
    assert not box.outbox.pending


def test_not_now_keeps_the_add_and_asks_to_resend_it_but_a_refusal_for_good_drops_it() -> None:
    """Rate limited: still pending, resent after the injected delay. Overflow: settled, and said to be."""
    box, posted = inbox()
    later, never = box.outbox.add(5), box.outbox.add(10**30)
    assert box.take(Error(ErrorCode.RATE_LIMITED, "slow down", op=later.op)) == ResendAfter(later.op, 3.0)
    assert box.take(Error(ErrorCode.OVERFLOW, "too big", op=never.op)) is None
    assert later.op in box.outbox.pending and never.op not in box.outbox.pending
    refusals = [m for m in posted if isinstance(m, ServerRefused)]
    assert [(m.add, m.settled) for m in refusals] == [(later, False), (never, True)]
    assert sum(isinstance(m, PendingChanged) for m in posted) == 1, "only the refusal for good changed them"
