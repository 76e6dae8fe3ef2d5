"""The dashboard's outbox: each add typed → on disk → queued → sent → settled, without a socket or a loop."""

from __future__ import annotations

from pathlib import Path

from tally.server.protocol import Add, Rename
from tally.tui.journal import Journal, fresh_in
from tally.tui.outbox import Outbox
from tally.tui.pending import Pending


def on_disk(journal: Journal) -> list[str]:
    """The op ids the journal holds now (what a dashboard started after a kill -9 would resend)."""
    return [add["op"] for add in journal.read().get("adds", [])]


def test_an_add_is_on_disk_before_it_leaves_the_outbox(tmp_path: Path) -> None:
    """Typed offline, an add waits; typed in a session it is queued, and written down before it is handed out."""
    journal = fresh_in(tmp_path)
    outbox = Outbox(Pending(journal))
    waiting = outbox.add(5, text="5")
    assert not outbox.ready and outbox.unsent == {waiting.op}, "no session: nothing goes out yet"
    assert outbox.welcomed("L1") is False
    assert on_disk(journal) == [waiting.op], "a welcome binds the adds to its ledger, on disk"
    assert outbox.next_message() == Add(op=waiting.op, amount=5)
    typed = outbox.add(-2)
    assert on_disk(journal) == [waiting.op], "typed, not saved yet (the link saves soon after typing)"
    assert outbox.add_is_next and outbox.next_message() == Add(op=typed.op, amount=-2)
    assert on_disk(journal) == [waiting.op, typed.op], "on disk by the time it could reach the server"
    assert outbox.unsent == set() and outbox.may_have_counted == 2


def test_a_session_queues_every_pending_add_and_settled_ones_are_skipped() -> None:
    """Each welcome resends all pending adds in order; one settled meanwhile does not go; requests go as they are."""
    outbox = Outbox(Pending())
    first, second = outbox.add(1), outbox.add(2)
    outbox.welcomed("L1")
    outbox.settle(first.op)
    assert outbox.request(Rename(name="zed"))
    assert outbox.next_message() == Add(op=second.op, amount=2)
    assert outbox.next_message() == Rename(name="zed")
    assert outbox.next_message() is None and not outbox.ready
    third = outbox.add(3)
    assert outbox.next_message() == Add(op=third.op, amount=3), "queued at once while a session is open"
    outbox.closed()
    assert not outbox.request(Rename(name="x")), "no session: a request is dropped"
    outbox.welcomed("L1")
    assert [outbox.next_message(), outbox.next_message()] == [Add(op="2", amount=2), Add(op="3", amount=3)]


def test_a_retry_goes_again_only_while_pending_and_in_a_session() -> None:
    """Refused "not now": sent again if still pending; after its ack, or without a session, not."""
    outbox = Outbox(Pending())
    add = outbox.add(4)
    outbox.welcomed("L1")
    assert outbox.next_message() == Add(op=add.op, amount=4)
    outbox.retry(add.op)
    assert outbox.next_message() == Add(op=add.op, amount=4)
    outbox.settle(add.op)
    outbox.retry(add.op)
    assert not outbox.ready
    outbox.closed()
    outbox.retry("1")
    assert not outbox.ready


def test_adds_for_another_ledger_are_held_then_kept_aside_or_discarded() -> None:
    """A welcome from another ledger holds them unsent; the user keeps them aside (a new session) or drops them."""
    outbox = Outbox(Pending())
    outbox.add(7)
    outbox.welcomed("L1")
    outbox.next_message()
    outbox.closed()
    assert outbox.welcomed("L2") is True and outbox.held and not outbox.ready
    old = outbox.keep_for_other_ledger(Pending(), "L2")
    assert len(old) == 1 and old.ledger == "L1" and not outbox.held
    assert not outbox.pending and outbox.pending.ledger == "L2"
    outbox.add(1)
    outbox.closed()
    outbox.pending.bind("L3")
    assert outbox.welcomed("L2") is True
    outbox.discard("L2")
    assert not outbox.pending and not outbox.held and outbox.pending.ledger == "L2"
