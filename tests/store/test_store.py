"""One contract, run against every store (memory, SQLite, a real Redis): what any backend must do."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tally.server.protocol import INT64_MAX, INT64_MIN, ErrorCode
from tally.server.state import AddRequest, Applied, Duplicate, Head, Refused, Snapshot, chain
from tally.server.store import Store, open_store
from tally.server.store.base import NoLedger, StoreGone
from tally.server.store.memory import MemoryStore
from tally.server.store.redis import RedisStore
from tally.server.store.sqlite import SQLiteStore
from tests.support.redis_server import RedisServer

RECENT = 120


def add(amount: int, op: str | None = None, session: str | None = "s1", undo: str | None = None) -> AddRequest:
    return AddRequest(amount=amount, name="alice", client="c1", session=session if op else None, op=op, undo=undo)


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def new_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> StoreFactory:
    """Builds stores of one kind; for SQLite and Redis, each one reopens the same ledger."""
    return await factory(request.param, tmp_path, redis_server, redis_prefix)


async def factory(kind: str, tmp_path: Path, redis_server: RedisServer, prefix: str) -> StoreFactory:
    if kind == "memory":
        return MemoryStore
    if kind == "sqlite":
        return lambda: SQLiteStore(tmp_path / "tally.db")
    creator = RedisStore(redis_server.url, prefix=prefix)
    await creator.create()  # a server never creates a Redis ledger by itself: tally-server init does
    await creator.close()
    return lambda: RedisStore(redis_server.url, prefix=prefix)


@pytest.fixture(params=["sqlite", "redis"])
async def durable_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> StoreFactory:
    """The stores that keep their ledger when closed."""
    return await factory(request.param, tmp_path, redis_server, redis_prefix)


@pytest.fixture(params=["memory", "sqlite"])
async def pruned_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> StoreFactory:
    """The stores that forget op ids when pruned (Redis expires them instead)."""
    return await factory(request.param, tmp_path, redis_server, redis_prefix)


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[Store]:
    opened = new_store()
    await opened.open(recent=RECENT)
    yield opened
    await opened.close()


async def reopen(new_store: StoreFactory) -> tuple[Store, Snapshot]:
    again = new_store()
    return again, await again.open(recent=RECENT)


async def test_a_new_store_is_empty(store: Store) -> None:
    """Total and seq start at zero with no records; the ledger has an id and a first epoch."""
    snapshot = await store.open(recent=RECENT)
    assert (snapshot.head, snapshot.recent, snapshot.contributions) == (Head(0, 0, snapshot.ledger), (), {})
    assert snapshot.ledger and snapshot.epoch == 1 and len(snapshot.key) == 32, "a ledger has its own key"


async def test_adds_apply_in_order_with_consecutive_seqs(store: Store) -> None:
    """Each applied add gets the next seq and the running total."""
    outcomes = await store.apply([add(5, "1"), add(-2, "2"), add(10)], at=100.0)
    records = [o.record for o in outcomes if isinstance(o, Applied)]
    assert [(r.seq, r.amount, r.total) for r in records] == [(1, 5, 5), (2, -2, 3), (3, 10, 13)]
    assert all(r.at == 100.0 and r.name == "alice" and r.client == "c1" for r in records)


async def test_a_repeated_op_is_answered_with_its_original_seq(store: Store) -> None:
    """Resending an op id changes nothing and returns the seq that applied it; another amount is a conflict."""
    await store.apply([add(5, "1"), add(7, "2")], at=1.0)
    outcomes = await store.apply([add(5, "1"), add(99, "2"), add(1, "3")], at=2.0)
    assert outcomes[0] == Duplicate(1)
    assert isinstance(outcomes[1], Refused) and outcomes[1].code == ErrorCode.CONFLICT
    assert isinstance(outcomes[2], Applied) and outcomes[2].record.total == 13


async def test_a_repeat_inside_one_batch_is_applied_once(store: Store) -> None:
    """The same op twice in one batch counts once."""
    outcomes = await store.apply([add(5, "1"), add(5, "1")], at=1.0)
    assert isinstance(outcomes[0], Applied) and outcomes[1] == Duplicate(1)


async def test_op_ids_are_scoped_to_the_session(store: Store) -> None:
    """Two clients may pick the same op id without losing each other's adds."""
    outcomes = await store.apply([add(1, "1", "s1"), add(2, "1", "s2")], at=1.0)
    assert all(isinstance(o, Applied) for o in outcomes)


async def test_adds_without_op_ids_always_apply(store: Store) -> None:
    """Bare-number adds carry no op id and are never deduplicated."""
    outcomes = await store.apply([add(1), add(1)], at=1.0)
    assert [o.record.total for o in outcomes if isinstance(o, Applied)] == [1, 2]


async def test_zero_is_refused(store: Store) -> None:
    """Zero changes nothing, on every path."""
    outcomes = await store.apply([add(0, "1"), add(0)], at=1.0)
    assert all(isinstance(o, Refused) and o.code == ErrorCode.INVALID_AMOUNT for o in outcomes)


async def test_overflow_is_refused_and_changes_nothing(store: Store) -> None:
    """An add past the 64-bit range is refused; the adds around it still apply."""
    outcomes = await store.apply([add(INT64_MAX - 1, "1"), add(2, "2"), add(1, "3")], at=1.0)
    assert isinstance(outcomes[1], Refused) and outcomes[1].code == ErrorCode.OVERFLOW
    assert isinstance(outcomes[2], Applied) and (outcomes[2].record.seq, outcomes[2].record.total) == (2, INT64_MAX)
    # A refused op id is not remembered: after the total moves, the same op may apply.
    await store.apply([add(-10, "4")], at=1.0)
    assert isinstance((await store.apply([add(2, "2")], at=1.0))[0], Applied)


async def test_the_64_bit_edges_are_exact(store: Store) -> None:
    """The total reaches both ends of the signed 64-bit range exactly (no rounding through doubles)."""
    first = await store.apply([add(INT64_MAX, "1"), add(-1, "2")], at=1.0)
    assert [o.record.total for o in first if isinstance(o, Applied)] == [INT64_MAX, INT64_MAX - 1]
    down = await store.apply([add(-INT64_MAX, "3"), add(-INT64_MAX, "4"), add(-1, "5"), add(1, "6")], at=1.0)
    assert [o.record.total if isinstance(o, Applied) else getattr(o, "code", o) for o in down] == [
        -1, INT64_MIN, ErrorCode.OVERFLOW, INT64_MIN + 1
    ]  # fmt: skip


async def test_undo_and_contributions(store: Store, new_store: StoreFactory) -> None:
    """An undo names the update it took back; each session's contribution is kept, across a reopen."""
    await store.apply([add(5, "1"), add(-5, "2", undo="1"), add(3, "1", "s2")], at=1.0)
    wrong = await store.apply([add(-3, "3", undo="1"), add(-3, "4", "s1", undo="nope")], at=1.0)
    assert all(isinstance(o, Refused) and o.code == ErrorCode.INVALID_UNDO for o in wrong)
    again, snapshot = (
        (store, await store.open(recent=RECENT)) if isinstance(store, MemoryStore) else await reopen(new_store)
    )
    assert [(r.seq, r.undoes) for r in snapshot.recent] == [(1, None), (2, 1), (3, None)]
    assert snapshot.contributions == {"s1": 0, "s2": 3}
    if again is not store:
        await again.close()


async def test_an_op_is_undone_once(store: Store) -> None:
    """A second undo of the same op is refused, in the same batch or a later one; a redo (undo of the undo) is not."""
    first = await store.apply([add(5, "1"), add(-5, "2", undo="1"), add(-5, "3", undo="1")], at=1.0)
    assert (
        isinstance(first[2], Refused)
        and first[2].code == ErrorCode.INVALID_UNDO
        and "already undone" in first[2].message
    )
    later = await store.apply([add(-5, "4", undo="1"), add(5, "5", undo="2")], at=2.0)
    assert isinstance(later[0], Refused) and "update 2" in later[0].message
    assert isinstance(later[1], Applied) and later[1].record.undoes == 2


async def test_every_store_chains_the_same_fingerprints(store: Store) -> None:
    """Each update's fingerprint follows from the one before by the one rule (Lua computes the same as Python)."""
    snapshot = await store.open(recent=RECENT)
    outcomes = await store.apply([add(5, "1"), add(-2, "2"), add(10), add(INT64_MAX, "3"), add(-7, "4")], at=3.0)
    records = [o.record for o in outcomes if isinstance(o, Applied)]
    previous = snapshot.head.digest
    for record in records:
        assert record.digest == chain(previous, record.seq, record.session, record.op, record.amount, record.total)
        previous = record.digest
    again = await store.open(recent=RECENT)
    assert again.head.digest == previous and [r.digest for r in again.recent] == [r.digest for r in records]
    assert await store.digest_at(records[1].seq) in (records[1].digest, None)


async def test_the_snapshot_keeps_the_most_recent_records(store: Store) -> None:
    """A snapshot carries the head and the last records asked for, oldest first."""
    await store.apply([add(1) for _ in range(RECENT + 5)], at=3.0)
    snapshot = await store.open(recent=RECENT)
    assert [r.seq for r in snapshot.recent] == list(range(6, RECENT + 6))
    assert (snapshot.head.total, snapshot.head.seq) == (RECENT + 5, RECENT + 5)


async def test_history_answers_the_total_at_given_times(store: Store) -> None:
    """For each time, the last update at or before it; repeats are left out; before the first there is none."""
    await store.apply([add(5, "1")], at=100.0)
    await store.apply([add(2, "2")], at=200.0)
    await store.apply([add(-1, "3")], at=300.0)
    points = await store.history([50.0, 150.0, 160.0, 250.0, 400.0])
    assert [(p.seq, p.total) for p in points] == [(1, 5), (2, 7), (3, 6)]


async def test_pruning_forgets_old_op_ids_but_keeps_the_total(pruned_store: StoreFactory) -> None:
    """Past the retention window an op id is forgotten; the head, and a point a minute, stay."""
    store = pruned_store()
    await store.open(recent=RECENT)
    await store.apply([add(1, "1"), add(2, "2")], at=60.5)
    await store.apply([add(3, "3")], at=61.0)
    await store.apply([add(4, "4")], at=500.0)
    await store.prune(before=400.0)
    again = await store.apply([add(1, "1"), add(4, "4")], at=600.0)
    assert isinstance(again[0], Applied), "an op past the window applies again (docs/guarantees.md says so)"
    assert again[1] == Duplicate(4)
    points = await store.history([61.0, 500.0])
    assert [(p.seq, p.total) for p in points] == [(3, 6), (4, 10)]
    await store.close()


async def test_redis_op_ids_expire_after_the_retention(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    """Redis keeps each op id under a key that expires with the retention window, not forever."""
    store = RedisStore(redis_server.url, prefix=redis_prefix, retention=3600)
    await store.create()
    await store.open(recent=RECENT)
    await store.apply([add(5, "1")], at=1.0)
    ttl = await store.redis.ttl(store.key("op:s1:1"))
    assert 3500 < ttl <= 3600
    await store.close()


async def test_redis_writes_only_under_its_prefix_and_forgets_sessions_unseen_since(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    """Another app's keys in the same Redis are never touched; a session's contribution goes when it is unseen."""
    store = RedisStore(redis_server.url, prefix=redis_prefix, retention=3600)
    before = set(await store.redis.keys("*"))  # other tests' ledgers, in the same redis-server
    await store.create()
    await store.open(recent=RECENT)
    await store.apply([add(5, "1")], at=1.0)
    await store.apply([add(6, "2")], at=2.0)
    written = set(await store.redis.keys("*")) - before
    assert written and all(str(key).startswith(redis_prefix) for key in written), sorted(written)
    assert await store.redis.hget(store.key("seen"), "s1") == "2.0"
    await store.prune(before=10.0)
    assert await store.redis.hget(store.key("added"), "s1") is None, "unseen since: forgotten"
    await store.close()


async def test_everything_survives_a_reopen(durable_store: StoreFactory) -> None:
    """Total, seq, records and op ids survive closing and opening again."""
    store = durable_store()
    await store.open(recent=RECENT)
    await store.apply([add(5, "1"), add(6, "2")], at=1.0)
    await store.close()
    second, snapshot = await reopen(durable_store)
    assert (snapshot.head.total, snapshot.head.seq, len(snapshot.recent)) == (11, 2, 2)
    assert snapshot.head.digest == snapshot.recent[-1].digest != "", "the fingerprint survives too"
    assert await second.apply([add(5, "1")], at=2.0) == [Duplicate(1)]
    await second.close()


async def test_a_failed_sqlite_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """If a transaction fails midway, none of its adds are stored."""
    store = SQLiteStore(tmp_path / "tally.db")
    await store.open(recent=RECENT)
    await store.apply([add(1, "1")], at=1.0)
    poison = AddRequest(amount=2, name=None, client="c1", session="s1", op="2")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        await store.apply([add(3, "3"), poison], at=2.0)
    snapshot = await store.open(recent=RECENT)
    assert (snapshot.head.total, snapshot.head.seq) == (1, 1)
    await store.close()


@pytest.mark.parametrize(
    ("url", "kind"),
    [("memory://", MemoryStore), (":memory:", MemoryStore), ("sqlite:///tmp/x.db", SQLiteStore), ("x.db", SQLiteStore),
     ("redis://localhost:6379/0", RedisStore), ("unix:///run/redis.sock", RedisStore),
     ("rediss://cache.example:6380/1", RedisStore)],
)  # fmt: skip
def test_store_is_chosen_by_url(url: str, kind: type[Store]) -> None:
    """The URL scheme (or a plain path) picks the backend."""
    assert isinstance(open_store(url), kind)


def test_an_unknown_store_url_is_refused() -> None:
    """A scheme we do not support fails loudly instead of writing a file named like a URL."""
    with pytest.raises(ValueError, match="unsupported"):
        open_store("postgres://db")


async def test_a_redis_store_never_creates_a_ledger_by_itself(redis_server: RedisServer, redis_prefix: str) -> None:
    """Opening an empty Redis says there is no ledger and how to make one, and writes nothing."""
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    with pytest.raises(NoLedger, match="tally-server init"):
        await store.open(recent=RECENT)
    assert await store.redis.keys(f"{redis_prefix}*") == []
    ledger = await store.create()
    with pytest.raises(Exception, match="already holds ledger"):
        await store.create()
    assert (await store.open(recent=RECENT)).ledger == ledger
    await store.close()


@pytest.mark.parametrize("change", ["delete", "rename", "replace"])
async def test_a_sqlite_file_changed_under_the_store_is_noticed_before_the_ack(tmp_path: Path, change: str) -> None:
    """Deleted, moved away or replaced: the next batch raises instead of returning outcomes to acknowledge, and so
    does every one after it until the file is back."""
    path = tmp_path / "tally.db"
    store = SQLiteStore(path)
    await store.open(recent=RECENT)
    await store.apply([add(1, "1")], at=1.0)
    if change == "delete":
        path.unlink()
    elif change == "rename":
        path.rename(tmp_path / "moved.db")
    else:
        other = SQLiteStore(tmp_path / "other.db")
        await other.open(recent=RECENT)
        await other.close()
        os.replace(tmp_path / "other.db", path)
    for op in ("2", "3"):
        with pytest.raises(StoreGone):
            await store.apply([add(1, op)], at=2.0)
    if change == "rename":
        (tmp_path / "moved.db").rename(path)  # moved back: the same file, served again
        assert isinstance((await store.apply([add(1, "4")], at=3.0))[0], Applied)
    await store.close()


async def test_sqlite_history_is_read_beside_the_writer(tmp_path: Path) -> None:
    """A history request is answered while the writer's thread is busy: reads never wait behind commits."""
    store = SQLiteStore(tmp_path / "tally.db")
    await store.open(recent=RECENT)
    await store.apply([add(5, "1")], at=100.0)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    blocked = loop.run_in_executor(store._writer, release.wait)  # the writer, stuck in a long commit
    try:
        points = await asyncio.wait_for(store.history([50.0, 150.0]), timeout=10)
        assert [(p.seq, p.total) for p in points] == [(1, 5)]
    finally:
        release.set()
        await blocked
    await store.close()
