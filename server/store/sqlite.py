"""The durable default store: SQLite in WAL mode, one transaction per batch.

Each applied add is a row of ``updates``; the total is the last row's total,
and the unique index on (session, op) is what makes a resend a no-op, across
restarts too. ``synchronous=FULL`` makes a commit survive power loss as well
as a process crash; group commit in the ledger pays for the fsync.

sqlite3 blocks, so every call runs on one dedicated thread, which is also
what keeps the single connection safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from server.protocol import HistoryPoint
from server.state import AddRequest, Applied, Duplicate, Outcome, Record, Refused, Snapshot, next_total
from server.store.base import HISTORY_POINTS, Store

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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def open(self) -> Snapshot:
        return await self._run(self._open)

    def _open(self) -> Snapshot:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(_SCHEMA)
        rows = self.db.execute(
            "SELECT seq, at, total FROM updates ORDER BY seq DESC LIMIT ?", (HISTORY_POINTS,)
        ).fetchall()
        history = tuple(HistoryPoint(seq, at, total) for seq, at, total in reversed(rows))
        seq, total = (history[-1].seq, history[-1].total) if history else (0, 0)
        return Snapshot(total=total, seq=seq, history=history)

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await self._run(lambda: self._apply(batch, at))

    def _apply(self, batch: Sequence[AddRequest], at: float) -> list[Outcome]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq, total FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
            seq, total = row if row is not None else (0, 0)
            outcomes: list[Outcome] = []
            for request in batch:
                if request.op is not None:
                    seen = db.execute(
                        "SELECT seq FROM updates WHERE session IS ? AND op = ?", (request.session, request.op)
                    ).fetchone()
                    if seen is not None:
                        outcomes.append(Duplicate(seen[0]))
                        continue
                new_total = next_total(total, request.amount)
                if isinstance(new_total, Refused):
                    outcomes.append(new_total)
                    continue
                seq, total = seq + 1, new_total
                record = Record(
                    seq, at, request.amount, total, request.name, request.client, request.session, request.op
                )
                db.execute(
                    "INSERT INTO updates (seq, at, amount, total, name, client, session, op)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, request.amount, total, request.name, request.client, request.session, request.op),
                )
                outcomes.append(Applied(record))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return outcomes

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)
