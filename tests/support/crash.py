"""The crash harness: real dashboards' links add while servers (and Redis) are killed with SIGKILL at random.

One harness for one server on SQLite and for three servers on one Redis. Each link is the
real dashboard's (tests/support/lossy.py: the link with one ack in ``drop_every`` lost on
the way in): it queues adds while its server is away and resends them, paced, with their
original op ids, failing over to the next server it knows. At the end the network heals,
every add is acknowledged, and a fresh dashboard reads the total: the run says what it was
and what it should be.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.lossy import LossyLink
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess
from tests.support.waiting import until

__all__ = ["CrashRun", "crash_run"]


@dataclass
class CrashRun:
    ops: int
    expected_total: int
    total: int
    seq: int
    server_kills: int
    redis_kills: int
    acks_dropped: int
    refused: int


async def crash_run(
    servers: list[ServerProcess],
    *,
    writers: int,
    adds: int,
    kills: int,
    redis: RedisServer | None = None,
    seed: int = 1,
    pace: float = 0.003,
) -> CrashRun:
    """``writers`` links type ``adds`` each while ``kills`` SIGKILLs land at random (every third one on Redis, if
    given); the servers must be entered (``with``) by the caller, and are started here."""
    rng = random.Random(seed)
    urls = [server.start() for server in servers]
    links = [
        LossyLink(urls[n % len(urls) :] + urls[: n % len(urls)], f"dash-{n}", drop_every=7) for n in range(writers)
    ]
    runners = [asyncio.create_task(link.run()) for link in links]
    amounts: list[int] = []
    killed = {"server": 0, "redis": 0}

    # The sleeps in these two are the workload, not waits: adds typed at a random pace, kills at
    # random moments, and random downtime while adds queue up as pending.
    async def type_adds(link: LossyLink) -> None:
        for _ in range(adds):
            amount = rng.randint(1, 1000)
            amounts.append(amount)
            link.add(amount)
            await asyncio.sleep(rng.uniform(0, pace))

    async def kill_at_random() -> None:
        for n in range(kills):
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            if redis is not None and n % 3 == 2:
                redis.kill()
                killed["redis"] += 1
                await asyncio.sleep(rng.uniform(0, 0.3))
                redis.start()
                continue
            victim = rng.choice(servers)
            await asyncio.to_thread(victim.kill)
            killed["server"] += 1
            await asyncio.sleep(rng.uniform(0, 0.2))
            await asyncio.to_thread(victim.start)

    def all_answered(since: list[int]) -> Callable[[], bool]:
        return lambda: all(link.answered_since(n) for link, n in zip(links, since, strict=True))

    try:
        await asyncio.gather(kill_at_random(), *(type_adds(link) for link in links))
        # Links still backing off from the last kill come back while acks are still lost: how many are
        # lost must not depend on where each link's backoff happened to be.
        before = [link.connections for link in links]
        for link in links:
            link.reconnect_now()
        await until(all_answered(before), timeout=30, what="every link back and its resends answered")
        for link in links:
            link.drop_every = 0  # the network heals: every resend is acknowledged from now on
            if link.pending:
                link.reconnect_now()  # a reconnect resends everything pending
        await until(lambda: not any(link.pending for link in links), timeout=60, what="every add acknowledged")
        async with await Peer.join(urls[0], "auditor") as auditor:
            assert auditor.welcome is not None
            total, seq = auditor.welcome.total, auditor.welcome.seq
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    dropped, refused = sum(link.acks_dropped for link in links), sum(len(link.refused) for link in links)
    return CrashRun(len(amounts), sum(amounts), total, seq, killed["server"], killed["redis"], dropped, refused)
