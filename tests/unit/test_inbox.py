"""The dashboard's inbox: what the server says, turned into the link's events, without a socket or a clock."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from tally.server.protocol import Ack, Add, Error, ErrorCode, Resume, StoreStatus, Update, Welcome
from tally.tui.inbox import FlushAt, Inbox, ProbeAfter, ResendAfter, Resync
from tally.tui.journal import Journal, fresh_in
from tally.tui.messages import AddAcknowledged, Event, PendingChanged, ServerRefused, StoreChanged, UpdatesArrived
from tally.tui.outbox import Outbox
from tally.tui.pending import Pending


def update(seq: int, total: int) -> Update:
    return Update(seq=seq, total=total, amount=1, name="bob", client="c1", op=None, at=0.0,
                  fingerprint=f"{seq:016x}", seal=f"{total:016x}")  # fmt: skip


def welcome(seq: int = 0, store: StoreStatus | None = None, *, epoch: int = 1) -> Welcome:
    return Welcome(you="a", total=seq, seq=seq, clients=(), history=(), ledger="L1", epoch=epoch,
                   fingerprint=f"{seq:016x}", seal="5ea1" * 4, store=store)  # fmt: skip


def inbox(now: list[float] | None = None, pending: Pending | None = None) -> tuple[Inbox, list[Event]]:
    posted: list[Event] = []
    clock = now if now is not None else [0.0]
    outbox = Outbox(Pending() if pending is None else pending)
    box = Inbox(outbox, posted.append, clock=lambda: clock[0], flush_interval=0.1, flush_every=0.25,
                retry_later={ErrorCode.RATE_LIMITED: 3.0}, store_probe=2.0, wall=lambda: 1000.0)  # fmt: skip
    return box, posted


def unavailable(op: str) -> Error:
    return Error(ErrorCode.UNAVAILABLE, "not stored: the store is away; nothing was added", op=op)


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
    assert box.take(update(3, 3)) == FlushAt(50.3), "a new batch asks again, a quarter second after the last"
    box.flush()
    assert isinstance(posted[-1], UpdatesArrived) and [u.seq for u in posted[-1].updates] == [3]


def test_a_stream_of_updates_goes_out_a_batch_at_most_every_quarter_second_each_whole_and_in_order() -> None:
    """30 updates a second: a batch every flush_every (not every flush_interval), each with all the updates since
    the last, in order; after a quiet while, a lone update goes a flush_interval after it came."""
    now = [10.0]
    box, posted = inbox(now)
    flushes: list[float] = []
    due: float | None = None
    for seq in range(1, 91):  # three seconds
        now[0] = 10.0 + seq / 30
        if due is not None and now[0] >= due:  # the link's timer, at the first tick from when it was asked for
            box.flush()
            flushes.append(now[0])
            due = None
        timer = box.take(update(seq, seq))
        if timer is not None:
            assert due is None and isinstance(timer, FlushAt)
            due = timer.when
    box.flush()
    batches = [event.updates for event in posted if isinstance(event, UpdatesArrived)]
    assert [u.seq for batch in batches for u in batch] == list(range(1, 91)), "every update, once, in order"
    assert 0.1 - 1e-9 <= flushes[0] - (10 + 1 / 30) < 0.1 + 1 / 30, "the first after a quiet while: a tenth later"
    gaps = [later - earlier for earlier, later in itertools.pairwise(flushes)]
    assert all(0.25 <= gap < 0.25 + 1 / 30 + 1e-9 for gap in gaps), gaps
    assert len(batches) == 12 and max(len(batch) for batch in batches) <= 9
    now[0] += 5.0  # quiet
    box.flush()
    assert box.take(update(91, 91)) == FlushAt(now[0] + 0.1)


def test_a_gap_in_seq_asks_for_a_resync() -> None:
    """Update 3 after update 1: something was missed, and the link must fetch a fresh snapshot."""
    box, _ = inbox()
    box.take(update(1, 1))
    with pytest.raises(Resync):
        box.take(update(3, 3))


def test_the_stream_resumes_where_the_last_welcome_and_updates_left_it_with_its_sealed_claim() -> None:
    """No resume before a welcome; after one, the welcome's claim; after updates, the last update's claim."""
    box, _ = inbox()
    assert box.resume() is None
    box.welcomed(welcome(4, epoch=2))
    assert box.resume() == Resume("L1", 2, 4, 4, f"{4:016x}", "5ea1" * 4), "the welcome's, until an update comes"
    box.take(update(5, 50))
    assert box.resume() == Resume("L1", 2, 5, 50, f"{5:016x}", f"{50:016x}")


def test_updates_sent_unsealed_before_the_sealed_last_of_their_commit_leave_the_sealed_claim_standing() -> None:
    """Only a commit's last update is sealed: until it comes, the resume is the sealed claim before it."""
    box, _ = inbox()
    box.welcomed(welcome(4, epoch=2))
    sealed = box.resume()
    box.take(replace(update(5, 50), seal=""))
    box.take(replace(update(6, 60), seal=""))
    assert box.resume() == sealed, "an unsealed update proves nothing: the welcome's claim stands"
    box.take(update(7, 70))
    assert box.resume() == Resume("L1", 2, 7, 70, f"{7:016x}", f"{70:016x}")


def test_an_older_server_without_fingerprints_gets_a_resume_without_a_claim() -> None:
    """A welcome with no fingerprint or seal: the seq alone, no claim that proves nothing."""
    box, _ = inbox()
    box.welcomed(Welcome(you="a", total=4, seq=4, clients=(), history=(), ledger="L1", epoch=2))
    assert box.resume() == Resume("L1", 2, 4)


def test_the_claim_is_kept_on_disk_with_the_adds_and_a_later_dashboard_resumes_from_it(tmp_path: Path) -> None:
    """Written with the adds and at a checkpoint (never per update); a dashboard started on the file sends it."""
    journal = fresh_in(tmp_path)
    box, _ = inbox(pending=Pending(journal))
    box.outbox.welcomed("L1")
    box.welcomed(welcome(4))
    box.take(update(5, 50))
    assert "resume" not in journal.read() or journal.read()["resume"]["seq"] == 4, "not written per update"
    box.outbox.pending.checkpoint()
    assert journal.read()["resume"]["seq"] == 5
    journal.release()
    later, _ = inbox(pending=Pending(Journal.try_lock(journal.path)))
    assert later.resume() == Resume("L1", 1, 5, 50, f"{5:016x}", f"{50:016x}")


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


def test_refused_unavailable_the_adds_wait_with_one_state_and_go_again_when_the_store_is_back() -> None:
    """Three refusals: one StoreChanged (inferred, since the wall clock's now), no refusal event, all kept; the
    server's "available" sends all three again, in order, and says so once."""
    box, posted = inbox()
    outbox = box.outbox
    outbox.welcomed("L1")
    box.welcomed(welcome())
    adds = [outbox.add(n) for n in (1, 2, 3)]
    for _ in adds:
        outbox.next_message()
    timers = [box.take(unavailable(add.op)) for add in adds]
    assert isinstance(timers[0], ProbeAfter) and 1.0 <= timers[0].delay <= 2.0 and timers[1:] == [None, None]
    assert posted == [StoreChanged(StoreStatus("unavailable", unavailable("1").message, 1000.0), told=False)]
    assert len(outbox.pending) == 3 and outbox.paused and not outbox.ready
    assert box.take(StoreStatus("unavailable", "redis down", 990.0)) is None, "the same state: nothing more"
    assert len(posted) == 1 and box.told, "now the server said it"
    assert box.take(StoreStatus("available", "", 1010.0)) is None
    assert posted[-1] == StoreChanged(StoreStatus("available", "", 1010.0))
    assert [outbox.next_message() for _ in adds] == [Add(op=a.op, amount=a.amount) for a in adds]
    assert not any(isinstance(event, ServerRefused) for event in posted), "no event per refusal"


def test_a_welcome_that_says_the_store_is_away_holds_the_adds_until_it_is_back() -> None:
    """Reconnected during an outage: nothing is sent to be refused; the server's "available" sends them."""
    box, posted = inbox()
    outbox = box.outbox
    add = outbox.add(7)
    outbox.welcomed("L1")
    timer = box.welcomed(welcome(store=StoreStatus("rewound", "the store lost history", 900.0)))
    assert isinstance(timer, ProbeAfter)
    assert posted == [StoreChanged(StoreStatus("rewound", "the store lost history", 900.0))]
    assert outbox.next_message() is None
    box.take(StoreStatus("available", "", 950.0))
    assert outbox.next_message() == Add(op=add.op, amount=7)


def test_a_server_that_never_says_is_probed_with_backoff_and_an_ack_ends_the_outage() -> None:
    """No store messages (an older server): each probe lets one add go, later each time; its ack sends the rest."""
    box, posted = inbox()
    outbox = box.outbox
    outbox.welcomed("L1")
    box.welcomed(welcome())
    first, second = outbox.add(1), outbox.add(2)
    outbox.next_message()
    timer = box.take(unavailable(first.op))
    assert isinstance(timer, ProbeAfter)
    delays = []
    for _ in range(6):
        following = box.probe(timer.outage)
        assert isinstance(following, ProbeAfter)
        delays.append(following.delay)
        assert outbox.next_message() == Add(op=first.op, amount=1) and outbox.next_message() is None
        assert box.take(unavailable(first.op)) is None, "already away: no new state, no new timer"
    assert delays[-1] > delays[0] and max(delays) <= 60.0, delays
    assert box.probe(timer.outage - 1) is None, "a timer of an earlier outage does nothing"
    outbox.probe()
    outbox.next_message()
    box.take(Ack(op=first.op, seq=1))
    assert posted[-1] == StoreChanged(StoreStatus("available"), told=False)
    assert outbox.next_message() == Add(op=second.op, amount=2)
    assert box.probe(timer.outage) is None, "back: the probe stops"


def test_a_welcome_behind_what_was_seen_keeps_the_claim_until_a_new_epoch() -> None:
    """A store that lost updates 5-8 welcomes us at 4: the claim of 8 stays (and resyncs the stream at 4);
    the same ledger in a new epoch starts a new claim."""
    box, _ = inbox()
    box.welcomed(welcome(4))
    for seq in range(5, 9):
        box.take(update(seq, seq * 10))
    box.flush()  # the session ends
    box.welcomed(welcome(4))
    assert box.seq == 4 and box.resume() == Resume("L1", 1, 8, 80, f"{8:016x}", f"{80:016x}")
    assert box.take(update(5, 51)) == FlushAt(0.1), "the stream follows the server from its welcome"
    resume = box.resume()
    assert resume is not None and resume.seq == 8
    box.welcomed(welcome(4, epoch=2))
    assert box.resume() == Resume("L1", 2, 4, 4, f"{4:016x}", "5ea1" * 4)
