"""Who sees a rewind first: a dashboard's sealed resume, or a server through another spelling of the store's URL.

A Redis is restored from a copy taken mid-way while no server runs, so that no
running server watches it happen. Then the rewind must be caught by whoever comes
next: a server whose machine's witness saw the lost adds (whatever URL it names the
store by: the witness remembers ledgers by id), or, on a machine that saw nothing,
by a dashboard that resumes with the sealed state it was sent. Either way the ledger
carries on in a new epoch from the newest state anyone saw: no seq of the old epoch
names another add, the total keeps every acknowledged add, and a resent add stays a
duplicate when its op id is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tally.server.protocol import Ack, Error, Update, Welcome
from tests.support.local import free_port
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess, init_ledger
from tests.support.waiting import until

PREFIX = "rewind:"
QUICK = ("--cluster-ttl", "1.5")
SECRET = "rewind-secret-001"


@dataclass
class Before:
    """What the first server acknowledged, and the last update its dashboard was sent."""

    welcome: Welcome
    last: Update
    amounts: dict[str, int]


async def add_ten_with_a_backup_after_five(url: str, redis: RedisServer, backup: Path) -> Before:
    """Ten adds, each acknowledged; the Redis's append-only files copied after the fifth (appendfsync always)."""
    amounts: dict[str, int] = {}
    async with await Peer.join(url, "ann", SECRET) as ann:
        assert ann.welcome is not None
        last = None
        for n in range(1, 11):
            op = f"a{n}"
            amounts[op] = n * 100
            await ann.send(type="add", op=op, amount=n * 100)
            last = await ann.next_of(Update)
            assert (await ann.next_of(Ack)).op == op
            if n == 5:
                shutil.copytree(redis.directory / "appendonlydir", backup)
        assert last is not None and last.seal
        return Before(ann.welcome, last, amounts)


def restore(redis: RedisServer, backup: Path) -> None:
    """The operator's restore of the older copy."""
    redis.kill()
    shutil.rmtree(redis.directory / "appendonlydir")
    shutil.copytree(backup, redis.directory / "appendonlydir")
    redis.start()


async def welcomed(url: str, *, after_epoch: int, **hello: object) -> Welcome:
    """The welcome of a fresh connection, once the server serves an epoch after ``after_epoch``."""
    found: list[Welcome] = []

    async def try_once() -> None:
        with contextlib.suppress(OSError, InvalidStatus, TimeoutError, ConnectionClosed):
            async with await Peer.connect(url) as peer:
                await peer.hello("auditor", "auditor-secret-01", **hello)
                welcome = await peer.next_of(Welcome)
                if welcome.epoch > after_epoch:
                    found.append(welcome)
                    return
        await asyncio.sleep(0.1)  # the pace of the tries, not a wait on the repair

    await until(lambda: bool(found), timeout=30, what="a new epoch served", poll=try_once)
    return found[-1]


async def resend_until_acked(url: str, op: str, amount: int) -> Ack:
    """Send the add again, as a dashboard does after each reconnect (a repair's resync closes connections)."""
    acks: list[Ack] = []

    async def try_once() -> None:
        with contextlib.suppress(OSError, InvalidStatus, TimeoutError, ConnectionClosed):
            async with await Peer.join(url, "ann", SECRET) as ann:
                await ann.send(type="add", op=op, amount=amount)
                async with asyncio.timeout(10):
                    while not isinstance(answer := await ann.receive(), Ack | Error):
                        pass
                if isinstance(answer, Ack):
                    acks.append(answer)
                return
        await asyncio.sleep(0.1)  # the pace of the tries

    await until(lambda: bool(acks), timeout=40, what=f"an ack of {op}", poll=try_once)
    return acks[0]


async def test_a_server_naming_the_store_another_way_sees_its_witness_and_restores(tmp_path: Path) -> None:
    """Restored while no server ran, then served under another spelling of its URL: the witness (by ledger id)
    catches the rewind; the new epoch carries every acknowledged add, and a resent one stays a duplicate."""
    port = free_port()
    with RedisServer(tmp_path / "redis", port=port) as redis:
        spelled = f"redis://127.0.0.1:{port}/0"
        await init_ledger(spelled, PREFIX)
        witness = ("--witness", str(tmp_path / "witness.db"))
        with ServerProcess(spelled, "--redis-prefix", PREFIX, *QUICK, *witness) as first:
            before = await add_ten_with_a_backup_after_five(first.start(), redis, tmp_path / "backup")
            first.kill()
        restore(redis, tmp_path / "backup")
        respelled = f"redis://localhost:{port}"
        with ServerProcess(respelled, "--redis-prefix", PREFIX, *QUICK, *witness) as second:
            url = second.start()
            now = await welcomed(url, after_epoch=before.welcome.epoch)
            assert (now.seq, now.total) == (before.last.seq, before.last.total) == (10, 5_500)
            assert any("restored 5 acknowledged add(s) that the store had lost" in line for line in second.warnings)
            async with await Peer.join(url, "ann", SECRET) as ann:  # the same session resends an acknowledged add
                await ann.send(type="add", op="a7", amount=700)
                ack = await ann.next_of(Ack)
                assert (ack.op, ack.seq) == ("a7", 7)  # its first ack again: not applied twice
                await ann.send(type="add", op="a11", amount=1)
                update = await ann.next_of(Update)
                assert (update.seq, update.total) == (11, 5_501)


async def test_a_dashboards_sealed_resume_catches_a_rewind_no_server_remembers(tmp_path: Path) -> None:
    """The first server and its machine's witness are gone; a new server on another machine serves the restored
    copy as it is until a dashboard resumes with the sealed update 10: rewound, and carried on from that state in a
    new epoch (no seq 6-10 reused), the total the dashboard was shown kept."""
    port = free_port()
    with RedisServer(tmp_path / "redis", port=port) as redis:
        await init_ledger(redis.url, PREFIX)
        with ServerProcess(redis.url, "--redis-prefix", PREFIX, *QUICK, "--witness", str(tmp_path / "lost.db")) as gone:
            before = await add_ten_with_a_backup_after_five(gone.start(), redis, tmp_path / "backup")
            gone.kill()
        (tmp_path / "lost.db").unlink()  # that machine's disk is lost with it
        restore(redis, tmp_path / "backup")
        other_machine = ("--witness", str(tmp_path / "other.db"))
        with ServerProcess(redis.url, "--redis-prefix", PREFIX, *QUICK, *other_machine) as server:
            url = server.start()
            async with await Peer.join(url, "bob") as bob:  # what the store holds is all this server knows
                assert bob.welcome is not None and (bob.welcome.epoch, bob.welcome.seq) == (before.welcome.epoch, 5)
            last = before.last
            claim = {"ledger": before.welcome.ledger, "epoch": before.welcome.epoch, "seq": last.seq,
                     "total": last.total, "fingerprint": last.fingerprint, "seal": last.seal}  # fmt: skip
            now = await welcomed(url, after_epoch=before.welcome.epoch, resume=claim)
            assert (now.seq, now.total) == (10, 5_500)
            assert any("a dashboard had update 10" in line for line in server.warnings), server.warnings
            async with await Peer.join(url, "bob") as bob:
                await bob.send(type="add", op="b1", amount=1)
                update = await bob.next_of(Update)
                assert (update.seq, update.total) == (11, 5_501)


@pytest.mark.parametrize("forget_seen", [False, True], ids=["witness", "negative-control"])
async def test_an_add_stored_but_never_acknowledged_stays_a_duplicate_after_a_rewind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_seen: bool
) -> None:
    """Server A stores an add and dies before its ack; server B shows it; the store is then restored from a copy
    without it. B carries the ledger on from what it saw (the add included) and knows the add's op id, so the
    resend is a duplicate: counted once. Control: with B keeping no op ids of what it saw, it counts twice."""
    port = free_port()
    with RedisServer(tmp_path / "redis", port=port) as redis:
        await init_ledger(redis.url, PREFIX)
        shutil.copytree(redis.directory / "appendonlydir", tmp_path / "backup")  # the ledger with no adds
        monkeypatch.setenv("TALLY_TEST_FORGET_SEEN", "1" if forget_seen else "0")
        servers = [
            ServerProcess(redis.url, "--redis-prefix", PREFIX, *QUICK, "--witness", str(tmp_path / f"{name}.db"),
                          module="tests.support.dying_server")
            for name in ("a", "b")
        ]  # fmt: skip
        with servers[0] as a, servers[1] as b:
            monkeypatch.setenv("TALLY_TEST_DIE", "1")
            a_url = a.start()
            monkeypatch.setenv("TALLY_TEST_DIE", "0")
            b_url = b.start()
            async with await Peer.join(b_url, "watcher") as watcher, await Peer.join(a_url, "ann", SECRET) as ann:
                await ann.send(type="add", op="die-1", amount=1_000)  # stored, then A dies: no ack
                assert watcher.welcome is not None
                epoch = watcher.welcome.epoch
                shown = await watcher.next_of(Update, timeout=15)
                assert (shown.op, shown.total) == ("die-1", 1_000)
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await ann.next_of(Ack)
                    raise AssertionError("the add was acknowledged before the server died")
            restore(redis, tmp_path / "backup")
            now = await welcomed(b_url, after_epoch=epoch)
            assert (now.seq, now.total) == (1, 1_000)  # carried on from what B saw
            # As the dashboard does with what was not acknowledged.
            ack = await resend_until_acked(b_url, "die-1", 1_000)
            async with await Peer.join(b_url, "auditor") as auditor:
                assert auditor.welcome is not None
                total = auditor.welcome.total
    if forget_seen:
        assert (ack.seq, total) == (2, 2_000), "the control counts the resend again"
    else:
        assert (ack.seq, total) == (1, 1_000), "the resend is a duplicate: counted once"
