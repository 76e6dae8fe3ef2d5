"""The ledger: group commit, publish-before-ack, and refusing when the store fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tally.server.commit import LocalCommit
from tally.server.health import StoreHealth
from tally.server.history import HistoryReader
from tally.server.ledger import Ledger
from tally.server.protocol import ErrorCode
from tally.server.state import AddRequest, Applied, Outcome, Record, Refused
from tally.server.store.base import Store
from tally.server.store.memory import MemoryStore
from tally.server.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real SQLite store, counting its transactions."""

    transactions = 0

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        self.transactions += 1
        return await super().apply(batch, at=at)


class BrokenStore(MemoryStore):
    """A store whose disk has gone away."""

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        raise OSError("disk full")


def ledger_on(store: Store, publish: Callable[[Sequence[Record]], None] = lambda records: None) -> Ledger:
    """A ledger committing to ``store`` only (SQLite or memory), publishing through ``publish``."""
    return Ledger(LocalCommit(store), publish, StoreHealth())


def request(n: int) -> AddRequest:
    return AddRequest(amount=1, name="alice", client="c1", session="s1", op=str(n))


def submit(ledger: Ledger, add: AddRequest) -> asyncio.Future[Outcome]:
    """Submit ``add``; the future is its outcome, set when the ledger replies."""
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    ledger.submit(add, lambda _, outcome: future.set_result(outcome))
    return future


async def test_adds_that_arrive_together_share_one_transaction(tmp_path: Path) -> None:
    """A burst of 200 adds is committed in far fewer than 200 transactions."""
    store = CountingStore(tmp_path / "tally.db")
    published: list[Record] = []
    ledger = ledger_on(store, published.extend)
    await ledger.start()
    outcomes = await asyncio.gather(*(submit(ledger, request(n)) for n in range(200)))
    await ledger.stop()
    assert all(isinstance(o, Applied) for o in outcomes)
    assert [r.seq for r in published] == list(range(1, 201))
    assert store.transactions <= 2, store.transactions


async def test_updates_are_published_before_the_adder_hears_back() -> None:
    """By the time the ledger replies to an add, its update has been published."""
    published: list[Record] = []
    ledger = ledger_on(MemoryStore(), published.extend)
    await ledger.start()
    outcome = await submit(ledger, request(1))
    assert isinstance(outcome, Applied) and published == [outcome.record]
    assert (ledger.total, ledger.seq, len(ledger.view.recent)) == (1, 1, 1)
    await ledger.stop()


async def test_a_reply_that_fails_leaves_the_others_answered(caplog: pytest.LogCaptureFixture) -> None:
    """One submitter's reply raising is logged; the adds after it in the batch are still answered, and the
    writer goes on committing."""
    ledger = ledger_on(MemoryStore())
    await ledger.start()

    def broken(add: AddRequest, outcome: Outcome) -> None:
        raise RuntimeError("a bug in one session")

    ledger.submit(request(1), broken)
    answered = [submit(ledger, request(n)) for n in range(2, 5)]
    assert all(isinstance(outcome, Applied) for outcome in await asyncio.gather(*answered))
    assert isinstance(await submit(ledger, request(5)), Applied)
    assert "answering an add failed" in caplog.text and "a bug in one session" in caplog.text
    await ledger.stop()


async def test_a_failing_store_refuses_adds_and_publishes_nothing() -> None:
    """Nothing that was not stored is acknowledged or broadcast."""
    published: list[Record] = []
    ledger = ledger_on(BrokenStore(), published.extend)
    await ledger.start()
    outcome = await submit(ledger, request(1))
    assert isinstance(outcome, Refused) and outcome.code == ErrorCode.UNAVAILABLE and "disk full" in outcome.message
    assert published == [] and ledger.total == 0
    assert (ledger.health.state, ledger.health.reason) == ("unavailable", "disk full"), "one state, with its reason"
    await ledger.stop()


async def test_stop_stores_what_was_already_submitted(tmp_path: Path) -> None:
    """Adds received before shutdown are committed, not dropped."""
    ledger = ledger_on(SQLiteStore(tmp_path / "tally.db"))
    await ledger.start()
    futures = [submit(ledger, request(n)) for n in range(50)]
    await ledger.stop()
    assert all(isinstance(f.result(), Applied) for f in futures)
    reopened = SQLiteStore(tmp_path / "tally.db")
    assert (await reopened.open(recent=1)).head.total == 50
    await reopened.close()
    late = ledger_on(MemoryStore())
    await late.start()
    await late.stop()
    assert isinstance(submit(late, request(99)).result(), Refused)


async def test_the_ledger_answers_what_a_reconnecting_dashboard_missed() -> None:
    """missed(seq) gives every record after seq while they are all still in memory, None once they are not."""
    ledger = ledger_on(MemoryStore())
    await ledger.start()
    for n in range(5):
        await submit(ledger, request(n))
    view = ledger.view
    assert [r.seq for r in view.missed(2) or ()] == [3, 4, 5]
    assert view.missed(5) == () and view.missed(6) is None
    view.recent.popleft()  # as if seq 1 had fallen out of memory
    assert view.missed(0) is None and view.missed(1) is not None
    await ledger.stop()


async def test_a_window_older_than_the_ledger_starts_from_zero() -> None:
    """History over an hour of a ledger a minute old says the total was 0 at the window's start, so a
    chart shows the rise; an empty ledger answers 0 too."""
    store = MemoryStore()
    ledger = ledger_on(store)
    history = HistoryReader(store, ledger.view)
    await ledger.start()
    since = time.time() - 3600
    assert [(p.seq, p.total) for p in await history.answer(since, 10)] == [(0, 0)]
    for n in (5, 7):
        await submit(ledger, request(n))
    points = await history.answer(since - 1, 10)  # another question than the cached one
    assert [(p.seq, p.total) for p in points] == [(0, 0), (2, 2)]
    assert points[0].at == since - 1
    await ledger.stop()


async def test_contributions_are_kept_per_session() -> None:
    """What each session added in all is known without asking the store."""
    ledger = ledger_on(MemoryStore())
    await ledger.start()
    await submit(ledger, AddRequest(amount=5, name="alice", client="c1", session="s1", op="1"))
    await submit(ledger, AddRequest(amount=-2, name="alice", client="c2", session="s1", op="2"))
    await submit(ledger, AddRequest(amount=7, name="bob", client="c3", session="s2", op="1"))
    view = ledger.view
    assert (view.contribution("s1"), view.contribution("s2"), view.contribution(None)) == (3, 7, 0)
    await ledger.stop()
