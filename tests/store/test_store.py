"""One contract, run against every store: what any backend must do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from server.protocol import HISTORY_POINTS, INT64_MAX, ErrorCode
from server.state import AddRequest, Applied, Duplicate, Refused
from server.store import Store, open_store
from server.store.memory import MemoryStore
from server.store.sqlite import SQLiteStore


def add(amount: int, op: str | None = None, session: str | None = "s1") -> AddRequest:
    return AddRequest(amount=amount, name="alice", client="c1", session=session if op else None, op=op)


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds stores of one kind; for SQLite, each one reopens the same file."""
    if request.param == "memory":
        return MemoryStore
    return lambda: SQLiteStore(tmp_path / "tally.db")


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[Store]:
    opened = new_store()
    await opened.open()
    yield opened
    await opened.close()


async def test_a_new_store_is_empty(store: Store) -> None:
    """Total and seq start at zero with no history."""
    snapshot = await store.open()
    assert (snapshot.total, snapshot.seq, snapshot.history) == (0, 0, ())


async def test_adds_apply_in_order_with_consecutive_seqs(store: Store) -> None:
    """Each applied add gets the next seq and the running total."""
    outcomes = await store.apply([add(5, "1"), add(-2, "2"), add(10)], at=100.0)
    records = [o.record for o in outcomes if isinstance(o, Applied)]
    assert [(r.seq, r.amount, r.total) for r in records] == [(1, 5, 5), (2, -2, 3), (3, 10, 13)]
    assert all(r.at == 100.0 and r.name == "alice" and r.client == "c1" for r in records)


async def test_a_repeated_op_is_answered_with_its_original_seq(store: Store) -> None:
    """Resending an op id changes nothing and returns the seq that applied it."""
    await store.apply([add(5, "1"), add(7, "2")], at=1.0)
    outcomes = await store.apply([add(5, "1"), add(99, "2"), add(1, "3")], at=2.0)
    assert outcomes[:2] == [Duplicate(1), Duplicate(2)]
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
    """Legacy adds carry no op id and are never deduplicated."""
    outcomes = await store.apply([add(1), add(1)], at=1.0)
    assert [o.record.total for o in outcomes if isinstance(o, Applied)] == [1, 2]


async def test_overflow_is_refused_and_changes_nothing(store: Store) -> None:
    """An add past the 64-bit range is refused; the adds around it still apply."""
    outcomes = await store.apply([add(INT64_MAX - 1, "1"), add(2, "2"), add(1, "3")], at=1.0)
    assert isinstance(outcomes[1], Refused) and outcomes[1].code == ErrorCode.OVERFLOW
    assert isinstance(outcomes[2], Applied) and (outcomes[2].record.seq, outcomes[2].record.total) == (2, INT64_MAX)
    # A refused op id is not remembered: after the total moves, the same op may apply.
    await store.apply([add(-10, "4")], at=1.0)
    assert isinstance((await store.apply([add(2, "2")], at=1.0))[0], Applied)


async def test_history_keeps_the_most_recent_points(store: Store) -> None:
    """The snapshot carries the last HISTORY_POINTS totals, oldest first."""
    await store.apply([add(1) for _ in range(HISTORY_POINTS + 5)], at=3.0)
    snapshot = await store.open()
    assert [p.seq for p in snapshot.history] == list(range(6, HISTORY_POINTS + 6))
    assert snapshot.history[-1].total == HISTORY_POINTS + 5 == snapshot.total


async def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    """Total, seq, history and op ids survive closing and reopening the file."""
    first = SQLiteStore(tmp_path / "sub" / "tally.db")
    await first.open()
    await first.apply([add(5, "1"), add(6, "2")], at=1.0)
    await first.close()
    second = SQLiteStore(tmp_path / "sub" / "tally.db")
    snapshot = await second.open()
    assert (snapshot.total, snapshot.seq, len(snapshot.history)) == (11, 2, 2)
    assert await second.apply([add(5, "1")], at=2.0) == [Duplicate(1)]
    await second.close()


async def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """If a transaction fails midway, none of its adds are stored."""
    store = SQLiteStore(tmp_path / "tally.db")
    await store.open()
    await store.apply([add(1, "1")], at=1.0)
    poison = AddRequest(amount=2, name=None, client="c1", session="s1", op="2")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        await store.apply([add(3, "3"), poison], at=2.0)
    snapshot = await store.open()
    assert (snapshot.total, snapshot.seq) == (1, 1)
    await store.close()


@pytest.mark.parametrize(
    ("url", "kind"),
    [("memory://", MemoryStore), (":memory:", MemoryStore), ("sqlite:///tmp/x.db", SQLiteStore), ("x.db", SQLiteStore)],
)
def test_store_is_chosen_by_url(url: str, kind: type[Store]) -> None:
    """The URL scheme (or a plain path) picks the backend."""
    assert isinstance(open_store(url), kind)


def test_an_unknown_store_url_is_refused() -> None:
    """A scheme we do not support fails loudly instead of writing a file named like a URL."""
    with pytest.raises(ValueError, match="unsupported"):
        open_store("postgres://db")
