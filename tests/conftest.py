from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tally.server.app import TallyServer
from tests.support.redis_server import RedisServer
from tests.support.servers import serving

# Hypothesis: a quick run by default (a developer's loop), the thorough one where
# TALLY_HYPOTHESIS_PROFILE=thorough (.ci/run sets it). Examples go through a real server, so
# the number of examples, not a deadline, bounds a test's time.
settings.register_profile("quick", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("TALLY_HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture
async def server() -> AsyncIterator[TallyServer]:
    """A real server on port 0 with the in-memory store."""
    async with serving() as tally:
        yield tally


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file of this test's own."""
    return tmp_path / "tally.db"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (tests keep apart by key prefix)."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so tests sharing the Redis never see each other's ledgers."""
    return f"t{abs(hash(request.node.nodeid)):x}:"


@pytest.fixture(autouse=True)
def private_directories(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state, data, config and runtime directories: nothing of the user's is touched."""
    home = tmp_path_factory.mktemp("home")
    for variable, name in (("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"),
                           ("XDG_RUNTIME_DIR", "run")):  # fmt: skip
        directory = home / name
        directory.mkdir(mode=0o700)
        monkeypatch.setenv(variable, str(directory))
    return home
