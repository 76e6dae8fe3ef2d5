from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import ServerConfig, TallyServer


async def start_server(db: str, port: int = 0) -> TallyServer:
    """A real server on ``port`` (0: any free port), with its store at ``db``."""
    server = TallyServer(ServerConfig(port=port, db=db))
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
