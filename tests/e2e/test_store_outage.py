"""The store's outage in a real terminal: a real server on a real Redis, Redis killed and started again, the
dashboard read from the screen as its user reads it."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import StartTally
from tests.support import waiting
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess, init_ledger
from tests.support.terminal import shows_big, until_shown


def refused_unavailable(port: int) -> float:
    """How many adds the server refused as unavailable so far, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'^tally_adds_refused_total\{code="unavailable"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.timeout(180)  # the dashboard's own retry waits some seconds by design; every wait is on a condition
async def test_redis_away_and_back_reads_as_one_state_then_the_total_with_the_adds_once(
    tmp_path: Path, redis_prefix: str, start_tally: StartTally
) -> None:
    """Redis killed: the status line says since when the store is away and how many adds wait, and nothing on
    the screen changes when the dashboard tries one of them again (the server refuses it); Redis back, the status
    line is connected again and the total shows the waiting adds once."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        await init_ledger(redis.url, redis_prefix)
        with ServerProcess(redis.url, "--redis-prefix", redis_prefix) as server:
            url = server.start()
            terminal = start_tally("--url", url, "--no-spawn", "--name", "ann")
            await until_shown(terminal, "● connected")
            terminal.type("5\r")
            await until_shown(terminal, "added +5")
            assert shows_big(terminal.text(), "5"), terminal.describe()
            redis.kill()
            await until_shown(terminal, "store away since", timeout=15)
            terminal.type("1\r2\r3\r")
            screen = await until_shown(terminal, "store away since", "3 waiting")
            status = screen.splitlines()[0]
            assert "connected" not in status and "pending" not in status, status
            # The dashboard tries the oldest add again now and then (5 s, then longer): the server refuses it.
            # Read twice a second: a connection every 10 ms would meet the server's limit on new connections (429).
            await waiting.until(lambda: refused_unavailable(server.port) >= 1, timeout=30, what="a retry refused",
                                poll=lambda: asyncio.sleep(0.5))  # fmt: skip
            assert "refused" not in terminal.text().lower() and "try again" not in terminal.text().lower()
            redis.start()
            screen = await until_shown(terminal, "● connected", "the store is back", timeout=20)
            await until_shown(terminal, "added +3")
            screen = terminal.text()
            assert shows_big(screen, "11"), terminal.describe()
            assert "waiting" not in screen.splitlines()[0] and "pending" not in screen, terminal.describe()
            assert "refused" not in terminal.output.decode(errors="replace").lower(), "no refusal was ever drawn"
    finally:
        redis.kill()
