"""The dashboard while the server's store is away, driven by the pilot against real servers on a real Redis:
one calm state, adds that wait and count once when it is back, and a resume that carries its sealed claim."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import cast

from tally.server.protocol import Resume
from tally.server.store.redis import RedisStore
from tally.server.store.sqlite import SQLiteStore
from tally.server.view import Judgement
from tally.tui.app import make_app
from tally.tui.journal import Journal, fresh_in
from tally.tui.link import Link, LinkOptions
from tally.tui.messages import ConnectionLost, Event, ServerRefused, StoreChanged
from tally.tui.pending import Pending
from tests.support import waiting
from tests.support.dashboard import Recorder, log_text, screen_text, until
from tests.support.local import free_port
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import UNLIMITED_RATE, cluster, init_ledger, serving


def about_an_add(line: str) -> bool:
    """A log line about one add (an update, or when a waiting add of ours counted)."""
    return " added " in line or "was applied at" in line


async def test_redis_killed_and_started_again_is_one_state_and_the_waiting_adds_count_once(
    tmp_path: Path, redis_prefix: str
) -> None:
    """Redis killed under two servers: the status line says since when the store is away and how many adds wait,
    with no toast and no log line per refusal or retry (the probe runs many times); Redis back, the three adds typed
    meanwhile count once each, on every server, and the log says so in one line each way."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        await init_ledger(redis.url, redis_prefix)
        async with contextlib.AsyncExitStack() as stack:
            a, b = await cluster(stack, redis.url, redis_prefix, limits=UNLIMITED_RATE, store_retry=0.05)
            app = make_app(LinkOptions(a.url, "alice", store_probe=0.05))
            seen = Recorder(app)
            async with app.run_test(size=(80, 24)) as pilot:
                dashboard = app.dashboard
                await until(pilot, lambda: dashboard.status.state == "connected", what="connected")
                await pilot.press("5", "enter")
                await until(pilot, lambda: dashboard.total.total == 5, what="the first add")
                redis.kill()
                await until(pilot, lambda: dashboard.status.store is not None, timeout=15, what="the store away")
                await pilot.press("1", "enter", "2", "enter", "3", "enter")
                await until(pilot, lambda: "3 waiting" in screen_text(app), what=f"3 waiting:\n{screen_text(app)}")
                status = screen_text(app).splitlines()[0]
                assert "store away since" in status and "connected" not in status, status
                assert "store away" in str(dashboard.status.render()) and dashboard.status.has_class("-store-away")
                await until(pilot, lambda: seen.probes >= 5, timeout=20, what="the probe, again and again")
                total = dashboard.total
                assert (total.total, total.pending, total.pending_amount) == (5, 3, 6), "the adds stay visible"
                redis.start()
                await until(pilot, lambda: dashboard.total.total == 11 and not app.link.pending, timeout=20,
                            what="the waiting adds counted")  # fmt: skip
                await until(pilot, lambda: dashboard.status.store is None and "● connected" in screen_text(app))
                log = log_text(app)
                assert log.count("the store is away") == 1 and log.count("the store is back") == 1, log
                assert "refused" not in log and seen.of(ServerRefused) == [], log
                assert seen.toasts == [], seen.toasts
            for server in (a, b):
                async with await Peer.join(server.url, "auditor") as auditor:
                    assert auditor.welcome is not None
                    assert (auditor.welcome.total, auditor.welcome.seq) == (11, 4), "each add once, on every server"
    finally:
        redis.kill()


async def test_the_resume_carries_the_sealed_claim_and_a_real_server_accepts_it(db_path: Path) -> None:
    """A dashboard that saw updates reconnects with the last one's seq, total, fingerprint and seal; the server
    finds the seal its own and its history the same, sends what was missed, and the store stays available."""
    async with serving(db_path) as server:
        judged: list[tuple[Resume, Judgement]] = []
        judge = server.view.judge

        def recording(resume: Resume) -> Judgement:
            judged.append((resume, judge(resume)))
            return judged[-1][1]

        server.view.judge = recording  # type: ignore[method-assign]
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test(size=(80, 24)) as pilot:
            dashboard = app.dashboard
            await until(pilot, lambda: dashboard.status.state == "connected")
            await pilot.press("4", "enter", "3", "enter")
            await until(pilot, lambda: dashboard.total.total == 7)
            claim = app.link.inbox.resume()
            assert claim is not None and (claim.seq, claim.total) == (2, 7)
            assert claim.total is not None
            assert claim.seal == server.view.seal(claim.seq, claim.total, claim.fingerprint), "sealed by the server"
            async with await Peer.join(server.url, "bob") as bob:
                app.link.reconnect_now()  # the dashboard's ctrl+r
                await until(pilot, lambda: dashboard.status.state != "connected", what="reconnecting")
                await bob.send(type="add", op="b1", amount=10)
                await until(pilot, lambda: dashboard.total.total == 17 and dashboard.status.state == "connected")
            assert [resume for resume, _ in judged] == [claim], "the hello carried the claim"
            assert judged[0][1] == Judgement(), "the seal checks out and the history is the server's"
            assert server.health.available
            await until(pilot, lambda: "bob added +10" in log_text(app), what="the update missed meanwhile")


async def test_a_store_restored_from_an_older_copy_is_caught_by_a_restarted_dashboard(tmp_path: Path) -> None:
    """A dashboard quits; the SQLite file is replaced by an older copy (its sidecar too, so nothing on the
    server tells); the dashboard started again proves from its journal what it saw: the server says the store lost
    updates, the dashboard shows it and the server's reason, and an add waits. Started again with
    --accept-ledger-loss, the ledger carries on in a new epoch: one line says so and the add counts once."""
    db, port = tmp_path / "tally.db", free_port()
    journal = fresh_in(tmp_path / "journals")
    async with serving(db, port=port, limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"), pending=Pending(journal))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("1", "0", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 10)
            with sqlite3.connect(db) as source, sqlite3.connect(tmp_path / "backup.db") as copy:
                source.backup(copy)  # a copy taken now, restored later
            await pilot.press("1", "enter", "2", "enter", "3", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 16 and not app.link.pending)
        url = server.url
    journal.release()
    for path in (db, db.with_name("tally.db-wal"), db.with_name("tally.db-shm"), db.with_name("tally.db.ledger")):
        path.unlink(missing_ok=True)
    (tmp_path / "backup.db").rename(db)
    again = Journal.try_lock(journal.path)
    assert again is not None and again.read()["resume"]["seq"] == 4, "the claim was kept on disk"
    app = make_app(LinkOptions(url, "alice"), pending=Pending(again))
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.dashboard
        async with serving(db, port=port, limits=UNLIMITED_RATE):
            await until(pilot, lambda: dashboard.status.store is not None and dashboard.status.store.state == "rewound",
                        what="the store said to have lost updates")  # fmt: skip
            await pilot.press("7", "enter")
            await until(pilot, lambda: "store lost updates" in screen_text(app) and "1 waiting" in screen_text(app),
                        what=f"the state on screen:\n{screen_text(app)}")  # fmt: skip
            assert "update 4" in log_text(app) and "each counted once" in log_text(app), log_text(app)
        async with serving(db, port=port, limits=UNLIMITED_RATE, accept_ledger_loss=True) as server:
            app.link.reconnect_now()
            await until(pilot, lambda: dashboard.total.total == 17 and not app.link.pending, timeout=20,
                        what=f"the add counted:\n{log_text(app)}")  # fmt: skip
            await until(pilot, lambda: dashboard.status.store is None and dashboard.model.epoch == 2)
            assert server.view.epoch == 2
            after = log_text(app).split("disconnected: the server stopped")[-1].strip().splitlines()
            assert [line for line in after if not about_an_add(line)] == [after[0]], "one line says what happened"
            assert "carries on in epoch 2" in after[0] and "1 waiting add goes now" in after[0], after


async def test_a_rewound_shared_store_repaired_by_the_servers_is_one_line_in_the_log(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Redis emptied under a running server: the dashboard says the store lost updates and an add typed then waits;
    the servers repair the ledger and close every connection (1012); the dashboard resyncs in the new epoch, says
    so in one line (no "disconnected"), and the add counts once."""
    await init_ledger(redis_server.url, redis_prefix)
    async with serving(redis_server.url, redis_prefix=redis_prefix, limits=UNLIMITED_RATE, cluster_ttl=1.5) as server:
        assert server.cluster is not None
        server.cluster.repair.grace = 3600.0  # hold the repair, to look at the state before it
        app = make_app(LinkOptions(server.url, "alice"))
        seen = Recorder(app)
        async with app.run_test(size=(80, 24)) as pilot:
            dashboard = app.dashboard
            await until(pilot, lambda: dashboard.status.state == "connected")
            await pilot.press("5", "enter")
            await until(pilot, lambda: dashboard.total.total == 5)
            redis = cast("RedisStore", server.cluster.store).redis
            await redis.delete(*[key async for key in redis.scan_iter(match=f"{redis_prefix}*")])
            await until(pilot, lambda: "store lost updates" in screen_text(app), what="the state shown")
            await pilot.press("2", "enter")
            await until(pilot, lambda: "1 waiting" in screen_text(app).splitlines()[0])
            lost = log_text(app).splitlines()[-1]
            server.cluster.repair.grace = 0.0
            await until(pilot, lambda: dashboard.model.epoch == 2 and dashboard.total.total == 7, timeout=20,
                        what=f"the repair:\n{log_text(app)}")  # fmt: skip
            await until(pilot, lambda: dashboard.status.store is None and not app.link.pending)
            after = log_text(app).split(lost)[-1].strip().splitlines()
            assert [line for line in after if not about_an_add(line)] == [after[0]], after
            assert "carries on in epoch 2" in after[0] and "total 5" in after[0], after
            assert any(event.resync for event in seen.of(ConnectionLost)), "the server closed us with 1012"


async def test_the_link_probes_a_server_that_never_says_the_store_is_back(tmp_path: Path) -> None:
    """A server that sends no store messages (as an older one): the link infers the outage from the first refusal,
    holds the adds, tries the oldest again with backoff, and its ack sends the rest: each counts once, and the
    link said so once each way, never with a refusal."""
    store = SQLiteStore(tmp_path / "tally.db", busy_timeout=0.05)
    async with serving(store.path, store=store, limits=UNLIMITED_RATE) as server:
        server.publisher.store_changed = lambda status: None  # type: ignore[method-assign]
        events: list[Event] = []
        link = Link(LinkOptions(server.url, "alice", store_probe=0.05), events.append)
        runner = asyncio.create_task(link.run())
        try:
            await waiting.until(lambda: link.connected, what="connected")
            with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as other:
                other.execute("BEGIN EXCLUSIVE")  # like a backup tool holding the lock
                for amount in (1, 2, 3):
                    link.add(amount)
                await waiting.until(lambda: link.outbox.paused, what="the outage inferred")

                def refused() -> float:
                    found = server.metrics.registry.get_sample_value(
                        "tally_adds_refused_total", {"code": "unavailable"}
                    )
                    return found or 0.0

                sent = refused()
                await waiting.until(lambda: refused() >= sent + 3, what="the probe refused, again and again")
                other.execute("COMMIT")
            await waiting.until(lambda: not link.pending, timeout=15, what="every add settled")
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        assert (server.view.total, server.view.seq) == (6, 3), "each add once"
        changes = [(e.status.state, e.told) for e in events if isinstance(e, StoreChanged)]
        assert changes == [("unavailable", False), ("available", False)], changes
        assert not any(isinstance(e, ServerRefused) for e in events)
