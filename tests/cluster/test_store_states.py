"""What a server does when its shared store is away, empty or rewound: one line, one state, the truth at /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from tally.server.protocol import Ack, Error, ErrorCode, StoreStatus
from tally.server.store.redis import RedisStore
from tests.support.local import free_port
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import REPOSITORY, UNLIMITED_RATE, cluster, init_ledger, serving
from tests.support.waiting import until


def http(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` on a server's own port, as a load balancer would."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tally.server", *args],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def next_line(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    return await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), timeout=20)


async def test_a_server_waits_for_a_redis_that_is_down_then_serves(tmp_path: Path, redis_prefix: str) -> None:
    """Redis down at start: one line saying what the server waits for, /readyz 503 meanwhile (handshakes too),
    no traceback, and it serves by itself once Redis is there."""
    redis_port, port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    with server_process("--port", str(port), "--db", url, "--redis-prefix", redis_prefix) as process:
        first = await next_line(process)
        assert "waiting for the store" in first and url in first and "ctrl+c" in first, first
        status, text = await asyncio.to_thread(http, port, "/readyz")
        assert status == 503 and "waiting for the store" in text
        status, _ = await asyncio.to_thread(http, port, "/")  # a WebSocket handshake would get the same
        with RedisServer(tmp_path / "redis", port=redis_port):
            await init_ledger(url, redis_prefix)
            lines = [await next_line(process)]
            while "serving on" not in lines[-1]:
                lines.append(await next_line(process))
            assert not any("waiting" in line or "Traceback" in line for line in lines), lines
            status, text = await asyncio.to_thread(http, port, "/readyz")
            assert (status, text) == (200, "ready\n")
            process.terminate()
            assert process.wait(timeout=15) == 0


async def test_a_server_gives_up_on_its_store_when_told_to(redis_prefix: str) -> None:
    """With --store-timeout the wait ends with status 3 and one line more saying why."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tally.server", "--port", "0", "--db", f"redis://127.0.0.1:{free_port()}/0",
         "--store-timeout", "0.5"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3, done.stderr
    assert len(lines) == 2 and "did not answer within 0.5 s" in lines[1] and "Traceback" not in done.stderr


async def test_an_empty_redis_is_refused_and_left_empty_until_init(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    """No ledger: the server says so, and how to create one, in one line, and creates nothing; init creates it
    once (a second init changes nothing and says so)."""
    server = [sys.executable, "-m", "tally.server", "--port", "0", "--db", redis_server.url,
              "--redis-prefix", redis_prefix]  # fmt: skip
    refused = await asyncio.to_thread(subprocess.run, server, cwd=REPOSITORY, capture_output=True, text=True,
                                      timeout=30)  # fmt: skip
    assert refused.returncode == 1 and "tally-server init" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    assert await store.redis.keys(f"{redis_prefix}*") == [], "a start that refuses creates nothing"
    init = [sys.executable, "-m", "tally.server", "init", "--db", redis_server.url, "--redis-prefix", redis_prefix]
    created = await asyncio.to_thread(subprocess.run, init, cwd=REPOSITORY, capture_output=True, text=True, timeout=30)
    assert created.returncode == 0 and "created ledger" in created.stderr, created.stderr
    again = await asyncio.to_thread(subprocess.run, init, cwd=REPOSITORY, capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "already holds ledger" in again.stderr and "Traceback" not in again.stderr
    await store.close()


async def test_an_outage_is_one_state_each_way(tmp_path: Path, redis_prefix: str, caplog: object) -> None:
    """Redis killed for a while: every dashboard is told once that the store is away and once that it is back,
    the log says so once each way whatever the retries, /readyz tells the truth, and the add refused meanwhile
    counts once when sent again."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        await init_ledger(redis.url, redis_prefix)
        async with serving(redis.url, redis_prefix=redis_prefix, limits=UNLIMITED_RATE, cluster_ttl=1.5,
                           store_retry=0.05) as server:  # fmt: skip
            alice = await Peer.join(server.url, "alice", "alice-secret-0001")
            assert alice.welcome is not None and alice.welcome.store is not None
            assert (alice.welcome.store.state, alice.welcome.store.reason) == ("available", "")
            redis.kill()
            away = await alice.next_of(StoreStatus, timeout=10)
            assert (away.state == "unavailable" and redis.url.removeprefix("unix://") in away.reason) or away.reason
            await alice.send(type="add", op="1", amount=5)
            refusal = await alice.next_of(Error, timeout=10)
            assert (refusal.code, refusal.op) == (ErrorCode.UNAVAILABLE, "1") and "not stored" in refusal.message
            status, text = await asyncio.to_thread(http, server.port, "/readyz")
            assert status == 503 and "unavailable" in text
            await asyncio.sleep(1.5)  # the workload: the server retries many times meanwhile
            redis.start()
            back = await alice.next_of(StoreStatus, timeout=20)
            assert back.state == "available"
            await alice.send(type="add", op="1", amount=5)
            assert (await alice.next_of(Ack, timeout=10)).seq == 1
            assert await asyncio.to_thread(http, server.port, "/readyz") == (200, "ready\n")
            lines = [r.getMessage() for r in caplog.records if r.name == "tally.server"]  # type: ignore[attr-defined]
            assert sum("the store is unavailable" in line for line in lines) == 1, lines
            assert sum("available again" in line for line in lines) == 1, lines
            await alice.close()
    finally:
        redis.kill()


async def test_readiness_says_rewound_until_the_repair(redis_server: RedisServer, redis_prefix: str) -> None:
    """FLUSHALL under a running server: /readyz 503 with the reason and every dashboard told, adds refused; after
    the repair every dashboard is asked to reconnect and finds the same total in a new epoch."""
    await init_ledger(redis_server.url, redis_prefix)
    async with serving(redis_server.url, redis_prefix=redis_prefix, limits=UNLIMITED_RATE,
                       cluster_ttl=1.5) as server:  # fmt: skip
        assert server.cluster is not None
        server.cluster.repair.grace = 3600.0  # hold the repair, to look at the state before it
        alice = await Peer.join(server.url, "alice", "alice-secret-0001")
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        redis = cast("RedisStore", server.cluster.store).redis
        await redis.delete(*[key async for key in redis.scan_iter(match=f"{redis_prefix}*")])
        told = await alice.next_of(StoreStatus, timeout=10)
        assert told.state == "rewound" and "gone" in told.reason
        status, text = await asyncio.to_thread(http, server.port, "/readyz")
        assert status == 503 and "rewound" in text
        await alice.send(type="add", op="2", amount=1)
        assert (await alice.next_of(Error)).code == ErrorCode.UNAVAILABLE
        server.cluster.repair.grace = 0.0
        await until(lambda: server.view.epoch == 2, timeout=20, what="the repair")
        with contextlib.suppress(Exception):
            while True:
                await alice.receive(timeout=10)  # until the server closes the connection (1012)
        assert alice.connection.close_code == 1012
        again = await Peer.join(server.url, "alice", "alice-secret-0001")
        assert again.welcome is not None and (again.welcome.total, again.welcome.epoch) == (5, 2)
        assert await asyncio.to_thread(http, server.port, "/readyz") == (200, "ready\n")
        await again.close()


async def test_after_a_long_outage_everyone_is_still_online(tmp_path: Path, redis_prefix: str) -> None:
    """Redis away longer than the servers' ttl: once it is back, every server lists everyone connected, on its own
    server and on the others (the servers reaped one another meanwhile, and said so)."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        await init_ledger(redis.url, redis_prefix)
        async with contextlib.AsyncExitStack() as stack:
            a, b = await cluster(stack, redis.url, redis_prefix, limits=UNLIMITED_RATE, cluster_ttl=1.5)
            alice = await stack.enter_async_context(await Peer.join(a.url, "alice"))
            bob = await stack.enter_async_context(await Peer.join(b.url, "bob"))
            await until(lambda: len(a.roster) == len(b.roster) == 2, what="both listed on both servers")
            redis.kill()
            await alice.next_of(StoreStatus, timeout=10)
            await asyncio.sleep(2.5)  # the workload: away for longer than the ttl, so every server lapses
            redis.start()
            assert (await alice.next_of(StoreStatus, timeout=20)).state == "available"
            assert [(await bob.next_of(StoreStatus, timeout=20)).state for _ in range(2)] == [
                "unavailable",
                "available",
            ]
            await until(lambda: {c.name for c in a.roster} == {c.name for c in b.roster} == {"alice", "bob"},
                        timeout=20, what="everyone listed again on both servers")  # fmt: skip
            carol = await stack.enter_async_context(await Peer.join(a.url, "carol"))
            assert carol.welcome is not None and carol.welcome.online == 3
    finally:
        redis.kill()


async def test_a_password_in_the_store_url_is_never_written_out(tmp_path: Path, redis_prefix: str) -> None:
    """A Redis that asks for a password: init, the server's log (serving, the store away), /readyz and the witness
    show the URL with *** for the password, never the password itself."""
    password = "s3cret-redis-pass"
    with RedisServer(tmp_path / "redis", port=free_port()) as redis:
        plain = RedisStore(redis.url, prefix=redis_prefix)
        await plain.redis.config_set("requirepass", password)
        await plain.close()
        url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
        witness = tmp_path / "witness.db"
        init = [sys.executable, "-m", "tally.server", "init", "--db", url, "--redis-prefix", redis_prefix]
        created = await asyncio.to_thread(subprocess.run, init, cwd=REPOSITORY, capture_output=True, text=True,
                                          timeout=30)  # fmt: skip
        assert created.returncode == 0 and "***" in created.stderr, created.stderr
        port = free_port()
        args = ("--port", str(port), "--db", url, "--redis-prefix", redis_prefix, "--witness", str(witness))
        with server_process(*args) as process:
            lines = [await next_line(process)]
            while "serving on" not in lines[-1]:
                lines.append(await next_line(process))
            async with await Peer.join(f"ws://127.0.0.1:{port}", "ann") as ann:
                await ann.send(type="add", op="1", amount=5)
                await ann.next_of(Ack)
            redis.kill()
            answers: list[tuple[int, str]] = []

            async def ask() -> None:
                answers.append(await asyncio.to_thread(http, port, "/readyz"))

            await until(lambda: bool(answers) and answers[-1][0] == 503, poll=ask, what="/readyz 503")
            reason = answers[-1][1]
            lines.append(await next_line(process))  # the store's change of state, said once
            process.terminate()
            assert process.stderr is not None
            lines += await asyncio.to_thread(process.stderr.readlines)
    said = created.stderr + "".join(lines) + reason
    assert password not in said and "***" in "".join(lines), said
    assert password.encode() not in witness.read_bytes()
