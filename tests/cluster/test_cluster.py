"""Many servers, one total: three tally-servers on one real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

from tally.server.app import TallyServer
from tally.server.protocol import Ack, Presence, Update, Welcome
from tally.server.store.redis import RedisStore
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tests.support.dashboard import log_text, until
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import REPOSITORY, UNLIMITED_RATE, ServerProcess, init_ledger, serving
from tests.support.waiting import until as wait_until


@contextlib.asynccontextmanager
async def cluster(url: str, prefix: str, size: int = 3, **options: object) -> AsyncIterator[list[TallyServer]]:
    """``size`` servers sharing one Redis and prefix, in this process (the ledger is created first, if need be)."""
    with contextlib.suppress(Exception):  # already there: a test restarting its cluster
        await init_ledger(url, prefix)
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                serving(url, redis_prefix=prefix, limits=UNLIMITED_RATE, cluster_ttl=1.5, **options)  # type: ignore[arg-type]
            )
            for _ in range(size)
        ]
        yield servers


async def updates(peer: Peer, count: int) -> list[Update]:
    seen: list[Update] = []
    while len(seen) < count:
        message = await peer.receive(timeout=10)
        if isinstance(message, Update):
            seen.append(message)
    return seen


async def test_every_dashboard_sees_every_add_in_one_order(redis_server: RedisServer, redis_prefix: str) -> None:
    """Adds on three servers at once: every peer, on every server, sees seq 1..N with the same totals."""
    async with cluster(redis_server.url, redis_prefix) as servers:
        peers = [await Peer.join(server.url, f"p{n}") for n, server in enumerate(servers)]
        for round_ in range(20):
            for n, peer in enumerate(peers):
                await peer.send(type="add", op=str(round_), amount=n + 1)
        seen = [await updates(peer, 60) for peer in peers]
        assert [u.seq for u in seen[0]] == list(range(1, 61))
        assert all(
            [(u.seq, u.total, u.client) for u in s] == [(u.seq, u.total, u.client) for u in seen[0]] for s in seen
        )
        assert seen[0][-1].total == 20 * (1 + 2 + 3)
        for peer in peers:
            await peer.close()


async def test_one_clients_list_across_servers(redis_server: RedisServer, redis_prefix: str) -> None:
    """A join, rename and leave on one server reach dashboards on the others; a late joiner sees everyone."""
    async with cluster(redis_server.url, redis_prefix) as (a, b, c):
        alice = await Peer.join(a.url, "alice")
        bob = await Peer.join(b.url, "bob")
        joined = await alice.next_of(Presence)
        assert (joined.event, joined.client.id) == ("joined", bob.id)
        assert bob.id.split(".")[0] != alice.id.split(".")[0], "client ids are unique across servers"
        await bob.send(type="rename", name="robert")
        assert (await alice.next_of(Presence)).client.name == "robert"
        carol = await Peer.join(c.url, "carol")
        assert carol.welcome is not None and {x.name for x in carol.welcome.clients} == {"alice", "robert", "carol"}
        await bob.close()
        left = await alice.next_of(Presence)
        while left.event != "left":
            left = await alice.next_of(Presence)
        assert left.client.id == bob.id
        for peer in (alice, carol):
            await peer.close()


async def test_a_dashboard_resumes_on_another_server(redis_server: RedisServer, redis_prefix: str) -> None:
    """Back on another server with its last seq, a dashboard is sent just what it missed."""
    async with cluster(redis_server.url, redis_prefix) as (a, b, c):
        alice = await Peer.join(a.url, "alice", "alice-secret-0001")
        assert alice.welcome is not None
        ledger, epoch = alice.welcome.ledger, alice.welcome.epoch
        bob = await Peer.join(b.url, "bob")
        for n in range(5):
            await bob.send(type="add", op=str(n), amount=10)
        seen = await updates(alice, 5)
        await alice.close()
        for n in range(5, 8):  # while alice is away
            await bob.send(type="add", op=str(n), amount=1)
        await updates(bob, 8)
        back = await Peer.connect(c.url)
        await back.hello("alice", "alice-secret-0001", resume={"ledger": ledger, "epoch": epoch, "seq": seen[-1].seq})
        welcome = await back.expect(Welcome)
        assert welcome.missed is not None and [u.amount for u in welcome.missed] == [1, 1, 1]
        assert welcome.total == 53 and welcome.session == alice.welcome.session
        for peer in (bob, back):
            await peer.close()


async def test_after_a_history_loss_a_resume_gets_a_snapshot(redis_server: RedisServer, redis_prefix: str) -> None:
    """A new epoch (history lost, carried on by an operator) never replays what may no longer be true."""
    async with cluster(redis_server.url, redis_prefix, size=1) as (a,):
        alice = await Peer.join(a.url, "alice")
        assert alice.welcome is not None
        old = alice.welcome
        assert a.cluster is not None
        redis = cast("RedisStore", a.cluster.store).redis
        await redis.hincrby(f"{redis_prefix}meta", "epoch", 1)  # as a repair would
        await wait_until(lambda: a.view.epoch == old.epoch + 1, what="the server moved to the new epoch")
        back = await Peer.connect(a.url)
        await back.hello("alice", "x" * 16, resume={"ledger": old.ledger, "epoch": old.epoch, "seq": 0})
        welcome = await back.expect(Welcome)
        assert welcome.missed is None and welcome.epoch == old.epoch + 1
        for peer in (alice, back):
            await peer.close()


async def test_keys_deleted_under_running_servers_are_rebuilt_from_what_they_saw(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """Every key of the ledger deleted (FLUSHALL, or a careless operator): adds are refused meanwhile, never applied
    to a new empty ledger; the servers rebuild the same ledger, with every acknowledged add, in a new epoch."""
    async with cluster(redis_server.url, redis_prefix, size=2) as (a, b):
        alice = await Peer.join(a.url, "alice", "alice-secret-0001")
        assert alice.welcome is not None
        first = alice.welcome
        for n in range(3):
            await alice.send(type="add", op=str(n), amount=5)
        await updates(alice, 3)
        await wait_until(lambda: a.view.seq == b.view.seq == 3, what="both servers saw every add")
        assert a.cluster is not None
        redis = cast("RedisStore", a.cluster.store).redis
        await redis.delete(*[key async for key in redis.scan_iter(match=f"{redis_prefix}*")])
        await wait_until(lambda: a.view.epoch == first.epoch + 1, timeout=20, what="repaired, new epoch")
        await alice.close()
        again = await Peer.join(b.url, "alice-again", "alice-secret-0001")
        assert again.welcome is not None
        assert (again.welcome.ledger, again.welcome.total, again.welcome.seq) == (first.ledger, 15, 3)
        await again.send(type="add", op="2", amount=5)  # a resend of an acknowledged add: a duplicate, not a 4th
        await again.send(type="add", op="new", amount=1)
        acks = [await again.next_of(Ack), await again.next_of(Ack)]
        assert [a.seq for a in acks][1] == 4
        await wait_until(lambda: a.view.total == b.view.total == 16, what="one total on both servers")
        await again.close()


async def test_a_killed_servers_clients_leave_and_its_dashboard_fails_over(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    """kill -9 of one server: its clients leave everyone's lists within the bound; a dashboard given two
    URLs moves to the other server and its pending adds count once."""
    extra = ("--redis-prefix", redis_prefix, "--cluster-ttl", "1.5", "--rate", "1e9", "--burst", "1000000")
    await init_ledger(redis_server.url, redis_prefix)
    with ServerProcess(redis_server.url, *extra) as doomed, ServerProcess(redis_server.url, *extra) as survivor:
        first, second = doomed.start(), survivor.start()
        watcher = await Peer.join(second, "watcher")
        app = make_app(LinkOptions([first, second], "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected" and app.link.url == first)
            await pilot.press("5", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 5 and not app.link.pending)
            await asyncio.to_thread(doomed.kill)
            await pilot.press("7", "enter")  # typed while it fails over
            await until(pilot, lambda: app.link.url == second and app.dashboard.status.state == "connected", timeout=10)
            await until(
                pilot, lambda: app.dashboard.total.total == 12 and not app.link.pending, what="the add landed once"
            )
            # alice's first connection (on the dead server) leaves everyone's list.
            names = [p.client.name async for p in _presences(watcher, "left", timeout=6)]
            assert "alice" in names
        await watcher.close()
        async with await Peer.join(second, "auditor") as auditor:
            assert auditor.welcome is not None and (auditor.welcome.total, auditor.welcome.seq) == (12, 2)


async def _presences(peer: Peer, event: str, *, timeout: float) -> AsyncIterator[Presence]:
    async with asyncio.timeout(timeout):
        while True:
            presence = await peer.next_of(Presence, timeout=timeout)
            if presence.event == event:
                yield presence
                return


async def test_redis_killed_and_restarted_with_adds_in_flight(tmp_path: Path, redis_prefix: str) -> None:
    """kill -9 of Redis: adds are refused unavailable (nothing falsely acknowledged), the servers reconnect
    by themselves, and the dashboard's adds land once with the same total."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with cluster(redis.url, redis_prefix, size=2) as (a, b):
            app = make_app(LinkOptions([a.url, b.url], "alice"))
            async with app.run_test() as pilot:
                await until(pilot, lambda: app.dashboard.status.state == "connected")
                await pilot.press("1", "0", "enter")
                await until(pilot, lambda: app.dashboard.total.total == 10 and not app.link.pending)
                redis.kill()
                await pilot.press("5", "enter")
                await until(pilot, lambda: app.dashboard.status.store is not None, what="the store away, not an ack")
                assert "the store is away" in log_text(app)
                assert len(app.link.pending) == 1
                redis.start()
                await until(pilot, lambda: not app.link.pending, timeout=20, what="the add, resent, lands")
                await until(pilot, lambda: app.dashboard.total.total == 15)
            await wait_until(lambda: a.ledger.total == b.ledger.total == 15, what="both servers agree")
            assert a.ledger.seq == 2
    finally:
        redis.kill()


async def test_a_redis_back_from_an_older_file_is_repaired_while_servers_run(tmp_path: Path, redis_prefix: str) -> None:
    """Same ledger, fewer updates (an old backup restored, a lagging replica promoted): the server notices, refuses
    adds meanwhile, and carries the ledger on from what it saw, in a new epoch: nothing acknowledged is lost and no
    seq of the old epoch names another add."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        async with cluster(redis.url, redis_prefix, size=1) as (a,):
            alice = await Peer.join(a.url, "alice", "alice-secret-0001")
            assert alice.welcome is not None
            epoch = alice.welcome.epoch
            await alice.send(type="add", op="1", amount=5)
            assert isinstance(await alice.next_of(Ack), Ack)
            backup = tmp_path / "backup"
            shutil.copytree(redis.directory / "appendonlydir", backup)  # appendfsync always: the add is in it
            await alice.send(type="add", op="2", amount=7)
            assert isinstance(await alice.next_of(Ack), Ack)
            redis.kill()
            shutil.rmtree(redis.directory / "appendonlydir")
            shutil.copytree(backup, redis.directory / "appendonlydir")
            redis.start()
            await wait_until(lambda: a.view.epoch == epoch + 1, timeout=20, what="repaired in a new epoch")
            assert (a.view.total, a.view.seq) == (12, 2), "nothing acknowledged went missing"
            back = await Peer.join(a.url, "alice", "alice-secret-0001")
            await back.send(type="add", op="2", amount=7)  # resent: still a duplicate (its op id was restored)
            await back.send(type="add", op="3", amount=1)
            assert [(await back.next_of(Ack)).seq, (await back.next_of(Ack)).seq] == [2, 3]
            await wait_until(lambda: a.view.total == 13, what="the new add on top")
            await back.close()
    finally:
        redis.kill()


def test_a_redis_that_keeps_nothing_is_refused_unless_allowed(tmp_path: Path) -> None:
    """A Redis without an append-only file could lose acknowledged adds: the server says so and does not start."""
    with RedisServer(tmp_path / "volatile", appendonly=False) as volatile:
        done = subprocess.run(
            [sys.executable, "-m", "tally.server", "--port", "0", "--db", volatile.url],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.returncode == 1 and "appendonly" in done.stderr and "Traceback" not in done.stderr
