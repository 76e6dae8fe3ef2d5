"""The two ways tests start a Tally server: in this process, or as a child process to kill.

Every test that needs a real server uses :func:`serving` (or the ``server``
fixture built on it); only tests that must SIGKILL or SIGTERM a real process
use :class:`ServerProcess`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import resource
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tally.server.app import TallyServer
from tally.server.config import ServerConfig
from tally.server.limits import Limits
from tally.server.store import Store

__all__ = ["REPOSITORY", "UNLIMITED", "UNLIMITED_RATE", "ServerProcess", "init_ledger", "serving"]

# The checkout under test: child processes start here so that its packages come first.
REPOSITORY = Path(__file__).resolve().parents[2]

# For tests that stream adds as fast as they can on purpose (every client comes from 127.0.0.1).
UNLIMITED_RATE = Limits(
    rate=1e9, burst=1_000_000, address_rate=1e9, address_burst=1_000_000, connect_rate=1e9, connect_burst=1_000_000,
    max_connections_per_address=100_000, max_in_flight=100_000,
)  # fmt: skip
# The same, as command-line options for a server process.
UNLIMITED = (
    "--rate", "1e9", "--burst", "1000000", "--address-rate", "1e9", "--address-burst", "1000000",
    "--connect-rate", "1e9", "--connect-burst", "1000000", "--max-connections-per-address", "100000",
    "--max-in-flight", "100000",
)  # fmt: skip


@contextlib.asynccontextmanager
async def serving(
    db: str | Path = ":memory:",
    *,
    port: int = 0,
    keepalive: float | None = None,
    store: Store | None = None,
    **options: Any,
) -> AsyncIterator[TallyServer]:
    """A real server on 127.0.0.1 until the block ends (then every client gets 1001).

    ``db`` is a SQLite path, ``":memory:"`` or a store URL; ``store`` replaces the
    store it names (tests inject faulty ones). ``port=0`` takes any free port.
    ``keepalive`` sets the ping interval, ping timeout and close timeout alike.
    Other keywords are :class:`~server.app.ServerConfig` fields (``limits``, ``token``…).
    """
    config = ServerConfig(port=port, db=str(db), **options)
    if keepalive is not None:
        config = dataclasses.replace(config, ping_interval=keepalive, ping_timeout=keepalive, close_timeout=keepalive)
    async with TallyServer(config, store=store) as server:
        yield server


async def cluster(
    stack: contextlib.AsyncExitStack, url: str, prefix: str, count: int = 2, **options: Any
) -> list[TallyServer]:
    """``count`` servers sharing the ledger under ``prefix`` in the Redis at ``url``, closed with ``stack``."""
    return [await stack.enter_async_context(serving(url, redis_prefix=prefix, **options)) for _ in range(count)]


async def init_ledger(url: str, prefix: str = "tally:") -> str:
    """``tally-server init`` for a Redis, as an operator runs it once before a cluster's first server."""
    from tally.server.store.redis import RedisStore

    store = RedisStore(url, prefix=prefix)
    try:
        return await store.create()
    finally:
        await store.close()


_LISTENING = re.compile(r"serving on (ws://\S+)")


class ServerProcess:
    """``python -m server`` in a child process, for tests that kill it; ``with`` kills it at the end.

    The first start takes a free port; restarts reuse it, as a real restart would.
    """

    def __init__(
        self, db: Path | str, *extra: str, module: str = "tally.server", open_files: int | None = None
    ) -> None:
        """``open_files`` sets the process's limit on open files (soft and hard), as a default system would."""
        self.db = db
        self.extra = extra
        self.module = module
        self.open_files = open_files
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0
        self.log_lines = 0
        self.log_bytes = 0
        self.log: list[str] = []  # the first lines, and the last ones (bounded)
        self.warnings: list[str] = []  # every warning and error (bounded), whatever floods the rest

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and return its URL once it listens."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the previous server process is still running")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        limit = self.open_files

        def limit_open_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port), "--db", str(self.db), *self.extra],
            cwd=REPOSITORY,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
            preexec_fn=limit_open_files,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:  # bounded: the server prints this line first, or dies
            self._logged(line)
            if match := _LISTENING.search(line):
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                # Keep draining its log so a full pipe never blocks the server.
                threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True).start()
                return self.url
        raise RuntimeError("server did not start:\n" + "".join(self.log))

    def _logged(self, line: str) -> None:
        if (" WARNING " in line or " ERROR " in line) and len(self.warnings) < 1000:
            self.warnings.append(line)
        self.log_lines += 1
        self.log_bytes += len(line)
        self.log.append(line)
        if len(self.log) > 400:
            del self.log[200:300]  # keep the first 200 and the latest ones

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._logged(line)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM, and the exit status once the server has shut down."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=15)

    def stop(self) -> None:
        """Kill the server if it is still running."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
