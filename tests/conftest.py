from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import ServerConfig, TallyServer
from server.limits import Limits

# For tests that stream adds as fast as they can on purpose.
UNLIMITED_RATE = Limits(rate=1e9, burst=1_000_000)


async def start_server(
    db: str, port: int = 0, *, keepalive: float | None = None, limits: Limits | None = None
) -> TallyServer:
    """A real server on ``port`` (0: any free port), with its store at ``db``.

    ``keepalive`` shortens the ping interval, ping timeout and close timeout alike.
    """
    config = ServerConfig(port=port, db=db, limits=limits or Limits())
    if keepalive is not None:
        config = dataclasses.replace(config, ping_interval=keepalive, ping_timeout=keepalive, close_timeout=keepalive)
    server = TallyServer(config)
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[TallyServer]:
    """A real server on port 0 with the in-memory store."""
    tally = await start_server(":memory:")
    yield tally
    await tally.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tally.db"
