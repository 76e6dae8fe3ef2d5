"""The crash test across servers: writers spread over three servers on one Redis, servers and Redis killed
with SIGKILL at random, acks lost, writers failing over; every add counts exactly once."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.support.crash import CrashRun, crash_run
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess, init_ledger

# The real pacing (each link sends at 80% of the rate), small enough that queues exceed the burst.
PACED = ("--rate", "200", "--burst", "50", "--address-rate", "5000", "--address-burst", "500",
         "--cluster-ttl", "1.5")  # fmt: skip


async def cluster_crash_run(tmp_path: Path, *, module: str = "tally.server") -> CrashRun:
    """Six dashboards over three servers on one Redis, 150 adds each; four server kills and two Redis kills."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        await init_ledger(redis.url, "crash:")
        servers = [ServerProcess(redis.url, "--redis-prefix", "crash:", *PACED, module=module) for _ in range(3)]
        with contextlib.ExitStack() as stack:
            for server in servers:
                stack.enter_context(server)
            return await crash_run(servers, writers=6, adds=150, kills=6, redis=redis, seed=7, pace=0.006)
    finally:
        redis.kill()


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
    # With the run's figures, should the control ever fail to count twice.
    assert run.seq > run.ops and run.total > run.expected_total, run
