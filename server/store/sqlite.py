"""The durable default store: SQLite in WAL mode, one transaction per batch.

Each applied add is a row of ``updates``; the total is the last row's total,
and the unique index on (session, op) is what makes a resend a no-op, across
restarts too. ``synchronous=FULL`` makes a commit survive power loss as well
as a process crash; group commit in the ledger pays for the fsync.

sqlite3 blocks, so every call runs on one dedicated thread, which is also
what keeps the single connection safe. After any failure (disk full, locked,
corrupt, file gone) the connection is dropped and the next call opens a
fresh one, so the store recovers by itself once the fault clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from server.protocol import HISTORY_POINTS, HistoryPoint
from server.state import AddRequest, Head, OpKey, Outcome, Snapshot, apply_batch
from server.store.base import Store

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq     INTEGER PRIMARY KEY,
    at      REAL    NOT NULL,
    amount  INTEGER NOT NULL,
    total   INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    client  TEXT    NOT NULL,
    session TEXT,
    op      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS updates_by_op ON updates (session, op) WHERE op IS NOT NULL;
"""


class SQLiteStore(Store):
    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        # How long a write waits for another process's lock before failing.
        self.busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened on first use and again after a failure."""
        if self._db is None:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Configure a new connection and make sure the schema exists."""
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def open(self) -> Snapshot:
        return await self.snapshot()

    async def snapshot(self) -> Snapshot:
        return await self._run(self._snapshot)

    def _snapshot(self) -> Snapshot:
        try:
            rows = self.db.execute(
                "SELECT seq, at, total FROM updates ORDER BY seq DESC LIMIT ?", (HISTORY_POINTS,)
            ).fetchall()
        except sqlite3.Error:
            self._reset()
            raise
        history = tuple(HistoryPoint(seq, at, total) for seq, at, total in reversed(rows))
        seq, total = (history[-1].seq, history[-1].total) if history else (0, 0)
        return Snapshot(total=total, seq=seq, history=history)

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await self._run(lambda: self._apply(batch, at))

    def _apply(self, batch: Sequence[AddRequest], at: float) -> list[Outcome]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT total, seq FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
            head = Head(*row) if row is not None else Head()

            def applied_before(key: OpKey) -> int | None:
                seen = db.execute("SELECT seq FROM updates WHERE session IS ? AND op = ?", key).fetchone()
                return None if seen is None else int(seen[0])

            result = apply_batch(head, batch, at=at, applied_before=applied_before)
            db.executemany(
                "INSERT INTO updates (seq, at, amount, total, name, client, session, op)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.seq, r.at, r.amount, r.total, r.name, r.client, r.session, r.op) for r in result.records],
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._reset()
            raise
        return result.outcomes

    async def close(self) -> None:
        await self._run(self._reset)
        self._executor.shutdown(wait=True)
