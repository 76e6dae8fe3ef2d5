"""The dashboard's inbox: what the server says, turned into the app's messages, without a socket."""

from __future__ import annotations

import asyncio

import pytest
from textual.message import Message

from tally.server.protocol import Ack, Error, ErrorCode, Update
from tally.tui.inbox import Inbox, Resync
from tally.tui.messages import AddAcknowledged, PendingChanged, ServerRefused, UpdatesArrived
from tally.tui.model import Model


def update(seq: int, total: int) -> Update:
    return Update(seq=seq, total=total, amount=1, name="bob", client="c1", op=None, at=0.0)


def inbox(*, all_acked: list[bool] | None = None) -> tuple[Inbox, list[Message]]:
    posted: list[Message] = []
    acked = all_acked if all_acked is not None else []
    return Inbox(Model("alice"), posted.append, all_acked=lambda: acked.append(True)), posted


async def test_updates_are_posted_together_before_what_follows_them() -> None:
    box, posted = inbox()
    box.take(update(1, 1))
    box.take(update(2, 2))
    box.take(update(2, 2))  # a repeat is already shown
    assert posted == [], "batched until the next repaint"
    box.take(Error(ErrorCode.INVALID_NAME, "no"))
    arrived, refused = posted
    assert isinstance(arrived, UpdatesArrived) and [u.seq for u in arrived.updates] == [1, 2]
    assert isinstance(refused, ServerRefused)


async def test_a_gap_in_seq_asks_for_a_resync() -> None:
    box, _ = inbox()
    box.take(update(1, 1))
    with pytest.raises(Resync):
        box.take(update(3, 3))


async def test_an_ack_settles_its_add_once_and_says_when_nothing_is_left() -> None:
    done: list[bool] = []
    box, posted = inbox(all_acked=done)
    first, second = box.pending.add(5), box.pending.add(7)
    box.take(Ack(op=first.op, seq=1))
    box.take(Ack(op=first.op, seq=1))  # a repeated ack settles nothing
    assert [type(m) for m in posted] == [AddAcknowledged, PendingChanged] and not done
    box.take(Ack(op=second.op, seq=2))
    assert not box.pending and done == [True]


async def test_not_now_keeps_the_add_and_sends_it_again_later_but_a_refusal_for_good_drops_it() -> None:
    box, posted = inbox()
    resent: list[str] = []
    sent_again = asyncio.Event()

    def resend(op: str) -> None:
        resent.append(op)
        sent_again.set()

    box.resend = resend
    later, never = box.pending.add(5), box.pending.add(10**30)
    box.take(Error(ErrorCode.RATE_LIMITED, "slow down", op=later.op))
    box.take(Error(ErrorCode.OVERFLOW, "too big", op=never.op))
    assert later.op in box.pending and never.op not in box.pending
    assert sum(isinstance(m, ServerRefused) for m in posted) == 2
    await asyncio.wait_for(sent_again.wait(), 5)
    assert resent == [later.op]
