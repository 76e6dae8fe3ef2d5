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

from websockets.exceptions import ConnectionClosed, InvalidStatus

from tally.server.protocol import Ack, Update, Welcome
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

    await until(lambda: bool(found), timeout=60, what="a new epoch served", poll=try_once)
    return found[-1]


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
