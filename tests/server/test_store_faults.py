"""When the store fails: refuse adds with unavailable, acknowledge nothing unstored, keep serving, recover."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from tally.server.protocol import Ack, Error, ErrorCode, Presence, StoreStatus, Update
from tally.server.state import AddRequest, Outcome
from tally.server.store.sqlite import SQLiteStore
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tests.support.dashboard import until
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving


class SmallDisk(SQLiteStore):
    """The real SQLite store on a 'disk' of ``pages`` pages: SQLite itself reports SQLITE_FULL."""

    pages = 1_000_000

    def _prepare(self, db: sqlite3.Connection) -> None:
        super()._prepare(db)
        db.execute(f"PRAGMA max_page_count={self.pages}")

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        # The limit is per connection: re-apply it so a "full disk" stays full across reconnects.
        await self._run(lambda: self.db.execute(f"PRAGMA max_page_count={self.pages}"))
        return await super().apply(batch, at=at)


def stored_total(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT COALESCE(MAX(seq), 0), COALESCE(SUM(amount), 0) FROM updates").fetchone()
    return int(row[0]), int(row[1])


async def test_a_full_disk_refuses_adds_keeps_serving_and_recovers(tmp_path: Path) -> None:
    """Adds past a full disk get unavailable; acks match what is on disk; freeing space is enough."""
    store = SmallDisk(tmp_path / "tally.db")
    async with (
        serving(store.path, store=store, limits=UNLIMITED_RATE) as server,
        await Peer.join(server.url, "alice") as alice,
    ):
        acked, refused, n = 0, 0, 0
        store.pages = 8  # the disk fills up after a few hundred rows
        while refused < 5 and n < 5000:
            n += 1
            await alice.send(type="add", op=str(n), amount=1)
            reply = await alice.next_of(Ack | Error)  # type: ignore[arg-type]
            if isinstance(reply, Ack):
                acked += 1
            else:
                assert reply.code == ErrorCode.UNAVAILABLE and reply.op == str(n)
                refused += 1
        assert acked > 0 and refused == 5
        # Nothing unstored was acknowledged; everything acknowledged is stored.
        assert stored_total(store.path) == (acked, acked) == (server.ledger.seq, server.ledger.total)

        # Reads go on: a newcomer gets the snapshot and presence still works.
        async with await Peer.join(server.url, "bob") as bob:
            assert bob.welcome is not None and bob.welcome.total == acked
            assert (await alice.next_of(Presence)).client.name == "bob"

        store.pages = 1_000_000  # space freed: no restart, no operator action
        await alice.send(type="add", op="after", amount=10)
        assert (await alice.next_of(Update)).total == acked + 10
        assert (await alice.next_of(Ack)).op == "after"


async def test_a_locked_database_refuses_then_recovers_and_the_dashboard_retries(tmp_path: Path) -> None:
    """Another process holding the write lock: unavailable, the dashboard says the store is away once, its add
    stays pending and lands once."""
    store = SQLiteStore(tmp_path / "tally.db", busy_timeout=0.1)
    async with serving(store.path, store=store, limits=UNLIMITED_RATE) as server:
        with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as other:
            app = make_app(LinkOptions(server.url, "alice"))
            async with app.run_test() as pilot:
                await until(pilot, lambda: app.dashboard.status.state == "connected")
                other.execute("BEGIN EXCLUSIVE")  # like a backup tool holding the lock
                await pilot.press("7", "enter")
                await until(pilot, lambda: app.dashboard.status.store is not None, what="the store away")
                assert "the store is away" in app.dashboard.activity.selected_text()
                assert app.dashboard.status.pending == 1 and server.ledger.total == 0
                other.execute("COMMIT")
                await until(
                    pilot, lambda: app.dashboard.status.pending == 0 and app.dashboard.total.total == 7, timeout=15
                )
        assert stored_total(store.path) == (1, 7)


async def test_a_database_deleted_under_the_server_acknowledges_nothing_more(tmp_path: Path) -> None:
    """The SQLite file deleted while the server runs: the next add is refused with the reason (never acknowledged
    into the unlinked file), every dashboard is told the store is away, /readyz says why; moved back, it serves on."""
    path = tmp_path / "tally.db"
    async with serving(path, limits=UNLIMITED_RATE) as server, await Peer.join(server.url, "alice") as alice:
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        path.rename(tmp_path / "aside.db")
        await alice.send(type="add", op="2", amount=7)
        told = await alice.next_of(StoreStatus)  # the state first, then the refusal it explains
        assert told.state == "unavailable" and str(path) in told.reason
        refusal = await alice.expect(Error)
        assert (refusal.code, refusal.op) == (ErrorCode.UNAVAILABLE, "2") and "deleted or moved" in refusal.message
        assert server.not_ready() == f"the store is unavailable: {told.reason}"
        await alice.send(type="add", op="3", amount=1)
        assert (await alice.next_of(Error)).op == "3", "still nothing acknowledged"
        (tmp_path / "aside.db").rename(path)
        await alice.send(type="add", op="4", amount=1)
        assert (await alice.next_of(StoreStatus)).state == "available"
        assert (await alice.next_of(Ack)).op == "4"
