"""The dashboard's outbox: each add typed → on disk → queued → sent → settled, without a socket or a loop."""

from __future__ import annotations

from pathlib import Path

from tally.server.protocol import Add, HistoryRequest, Rename
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
    """Each welcome resends all pending adds in order; one settled meanwhile does not go; requests go first."""
    outbox = Outbox(Pending())
    first, second = outbox.add(1), outbox.add(2)
    outbox.welcomed("L1")
    outbox.settle(first.op)
    assert outbox.request(HistoryRequest("q1", 0.0))
    assert outbox.next_message() == HistoryRequest("q1", 0.0)
    assert outbox.next_message() == Add(op=second.op, amount=2)
    assert outbox.next_message() is None and not outbox.ready
    third = outbox.add(3)
    assert outbox.next_message() == Add(op=third.op, amount=3), "queued at once while a session is open"
    outbox.closed()
    assert not outbox.request(HistoryRequest("q2", 0.0)), "no session: a request is dropped"
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


def test_each_add_goes_under_the_name_it_was_typed_under() -> None:
    """Typed as alice, then renamed bob: alice's adds go after a rename to alice, then the server hears bob again."""
    outbox = Outbox(Pending(), "alice")
    first = outbox.add(1)
    outbox.rename("bob")
    second = outbox.add(2)
    assert (first.name, second.name) == ("alice", "bob")
    assert outbox.hello_name() == "bob", "a new session says the name of now"
    outbox.welcomed("L1")
    sent = [outbox.next_message() for _ in range(4)]
    assert sent == [Rename(name="alice"), Add(op=first.op, amount=1), Rename(name="bob"), Add(op=second.op, amount=2)]
    assert outbox.next_message() is None


def test_a_rename_in_a_session_goes_once_the_adds_typed_before_it_are_out() -> None:
    """Renamed with an add still queued: the add goes first, under the old name, then the rename."""
    outbox = Outbox(Pending(), "alice")
    outbox.hello_name()
    outbox.welcomed("L1")
    add = outbox.add(5)
    outbox.rename("carol")
    assert outbox.next_message() == Add(op=add.op, amount=5)
    assert outbox.next_message() == Rename(name="carol")
    assert outbox.next_message() is None


def test_while_the_store_is_away_adds_wait_and_all_go_in_order_when_it_is_back() -> None:
    """Refused "not now", an add is parked; typed meanwhile, another waits; requests still go; back, all go in order."""
    outbox = Outbox(Pending())
    outbox.welcomed("L1")
    first, second = outbox.add(1), outbox.add(2)
    assert outbox.next_message() == Add(op=first.op, amount=1)
    outbox.park(first.op)
    assert outbox.paused and outbox.add_is_next is False and not outbox.ready
    third = outbox.add(3)
    assert outbox.request(HistoryRequest("q1", 0.0)) and outbox.next_message() == HistoryRequest("q1", 0.0)
    assert outbox.next_message() is None, "adds wait while the store is away"
    assert len(outbox.pending) == 3
    outbox.resume()
    sent = [outbox.next_message() for _ in range(3)]
    assert sent == [Add(op=a.op, amount=a.amount) for a in (first, second, third)], "once each, in the order typed"
    assert outbox.next_message() is None


def test_a_probe_lets_the_oldest_waiting_add_through_once() -> None:
    """Paused: a probe sends the oldest waiting add, one only; refused again, it waits in its place."""
    outbox = Outbox(Pending())
    outbox.welcomed("L1")
    first, second = outbox.add(1), outbox.add(2)
    outbox.next_message()
    outbox.next_message()
    outbox.park(second.op)
    outbox.park(first.op)  # refusals may come in any order
    assert outbox.probe()
    assert outbox.next_message() == Add(op=first.op, amount=1)
    assert outbox.next_message() is None, "one add per probe"
    outbox.park(first.op)
    outbox.resume()
    assert [outbox.next_message(), outbox.next_message()] == [Add(op="1", amount=1), Add(op="2", amount=2)]
    assert not outbox.probe(), "nothing to probe once the store is back"


def test_a_new_session_forgets_the_pause_and_resends_everything() -> None:
    """The session ends while paused: the next welcome queues every pending add again, parked ones included."""
    outbox = Outbox(Pending())
    outbox.welcomed("L1")
    add = outbox.add(4)
    outbox.next_message()
    outbox.park(add.op)
    outbox.closed()
    assert not outbox.paused
    outbox.welcomed("L1")
    assert outbox.next_message() == Add(op=add.op, amount=4)
