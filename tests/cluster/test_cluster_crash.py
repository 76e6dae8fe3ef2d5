"""The crash test across servers: writers spread over three servers on one Redis, servers and Redis killed
with SIGKILL at random, acks lost, writers failing over; every add counts exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.lossy import LossyLink
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess, init_ledger
from tests.support.waiting import until

# The real pacing (each link sends at 80% of the rate), small enough that queues exceed the burst.
PACED = ("--rate", "200", "--burst", "50", "--address-rate", "5000", "--address-burst", "500",
         "--cluster-ttl", "1.5")  # fmt: skip


@dataclass
class ClusterRun:
    ops: int
    expected_total: int
    total: int
    seq: int
    server_kills: int
    redis_kills: int
    acks_dropped: int
    refused: int


async def cluster_crash_run(tmp_path: Path, *, module: str = "tally.server", seed: int = 7) -> ClusterRun:
    rng = random.Random(seed)
    redis = RedisServer(tmp_path / "redis").start()
    await init_ledger(redis.url, "crash:")
    extra = ("--redis-prefix", "crash:", *PACED)
    servers = [ServerProcess(redis.url, *extra, module=module) for _ in range(3)]
    with contextlib.ExitStack() as stack:
        stack.callback(redis.kill)
        for server in servers:
            stack.enter_context(server)
        urls = [server.start() for server in servers]
        # Six writers, each starting on a different server and failing over to the others.
        links = [LossyLink(urls[n % 3 :] + urls[: n % 3], f"w{n}", drop_every=7) for n in range(6)]
        runners = [asyncio.create_task(link.run()) for link in links]
        amounts: list[int] = []
        kills = {"server": 0, "redis": 0}

        # The sleeps below are the workload, not waits: adds typed at a random pace, kills at random moments.
        async def type_adds(link: LossyLink) -> None:
            for _ in range(150):
                amount = rng.randint(1, 1000)
                amounts.append(amount)
                link.add(amount)
                await asyncio.sleep(rng.uniform(0, 0.006))

        async def kill_at_random() -> None:
            for n in range(6):
                await asyncio.sleep(rng.uniform(0.1, 0.3))
                if n % 3 == 2:
                    redis.kill()
                    kills["redis"] += 1
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    redis.start()
                else:
                    victim = rng.choice(servers)
                    await asyncio.to_thread(victim.kill)
                    kills["server"] += 1
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    await asyncio.to_thread(victim.start)

        try:
            await asyncio.gather(kill_at_random(), *(type_adds(link) for link in links))
            for link in links:
                link.drop_every = 0  # the network heals
                if link.pending:
                    link.reconnect_now()
            await until(lambda: not any(link.pending for link in links), timeout=60, what="every add acknowledged")
            async with await Peer.join(urls[0], "auditor") as auditor:
                assert auditor.welcome is not None
                total, seq = auditor.welcome.total, auditor.welcome.seq
        finally:
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
    dropped, refused = sum(link.acks_dropped for link in links), sum(len(link.refused) for link in links)
    return ClusterRun(len(amounts), sum(amounts), total, seq, kills["server"], kills["redis"], dropped, refused)


@pytest.mark.slow
async def test_random_kills_of_servers_and_redis_apply_every_add_exactly_once(tmp_path: Path) -> None:
    """Four server kills, two Redis kills, one ack in seven lost: the total is the sum of all adds, each once."""
    run = await cluster_crash_run(tmp_path)
    print(
        f"\n{run.server_kills} server and {run.redis_kills} Redis kills, {run.ops} adds, {run.acks_dropped} acks lost"
    )
    assert (run.server_kills, run.redis_kills) == (4, 2) and run.acks_dropped > 50
    assert run.refused == 0
    assert (run.total, run.seq) == (run.expected_total, run.ops)


@pytest.mark.slow
async def test_negative_control_without_dedupe_the_cluster_double_counts(tmp_path: Path) -> None:
    """The same run with op-id dedupe switched off counts resent adds twice, and the same checks see it."""
    run = await cluster_crash_run(tmp_path, module="tests.support.forgetful_server")
    print(f"\ncontrol: {run.seq - run.ops} adds counted twice")
    assert run.seq > run.ops and run.total > run.expected_total
