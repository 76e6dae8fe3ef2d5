from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import TallyServer
from tests.support.servers import serving


@pytest.fixture
async def server() -> AsyncIterator[TallyServer]:
    """A real server on port 0 with the in-memory store."""
    async with serving() as tally:
        yield tally


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file of this test's own."""
    return tmp_path / "tally.db"
