"""The durable default store: SQLite in WAL mode, one transaction per batch.

Each applied add is a row of ``updates``; the total is the last row's total,
and the unique index on (session, op) is what makes a resend a no-op, across
restarts too. ``synchronous=FULL`` makes a commit survive power loss as well
as a process crash; group commit in the ledger pays for the fsync.

Past the retention window, rows lose their op id (a resend that old would
apply again: the README says so) and thin out to one a minute, which is all
a chart of the last day needs; ``meta`` keeps the ledger's id and epoch.

A small sidecar file (``<db>.ledger``) records the last seq committed. It is
written after each commit, outside the database, so that a database that
went backwards (restored from an old copy, a damaged WAL, a file truncated to
nothing) is noticed at start instead of being served as if nothing happened.

sqlite3 blocks, so every call runs on one dedicated thread, which is also
what keeps the single connection safe. After any failure (disk full, locked,
corrupt, file gone) the connection is dropped and the next call opens a
fresh one, so the store recovers by itself once the fault clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tally.server.protocol import HistoryPoint
from tally.server.state import AddRequest, Head, OpKey, OpRecord, Outcome, Record, Snapshot, apply_batch, saturating_add
from tally.server.store.base import LedgerLost, Store

__all__ = ["SQLiteStore"]

T = TypeVar("T")

log = logging.getLogger("tally.server")

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
CREATE INDEX IF NOT EXISTS updates_by_at ON updates (at);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    added   INTEGER NOT NULL,
    seen    REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_COLUMNS = "seq, at, amount, total, name, client, session, op, undoes"


class SQLiteStore(Store):
    def __init__(self, path: Path, *, busy_timeout: float = 5.0, accept_loss: bool = False) -> None:
        """``accept_loss`` starts even if the ledger went backwards (a new epoch begins)."""
        self.path = path
        # How long a write waits for another process's lock before failing.
        self.busy_timeout = busy_timeout
        self.accept_loss = accept_loss
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-sqlite")
        self._db: sqlite3.Connection | None = None
        self._sidecar: int | None = None  # the sidecar's file descriptor, once checked
        self._ledger = ""
        self._closed = False

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_name(self.path.name + ".ledger")

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
        """Configure a new connection and make sure the schema exists (upgrading an older one)."""
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(updates)")}
        if "undoes" not in columns:  # databases from before undo
            db.execute("ALTER TABLE updates ADD COLUMN undoes INTEGER")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('ledger', ?), ('epoch', '1')", (uuid.uuid4().hex[:16],))

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def open(self, *, recent: int) -> Snapshot:
        return await self._run(lambda: self._open(recent))

    def _open(self, recent: int) -> Snapshot:
        try:
            if self._sidecar is None:
                self._check_integrity()
            db = self.db
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute(f"SELECT {_COLUMNS} FROM updates ORDER BY seq DESC LIMIT ?", (recent,)).fetchall()
            head_row = db.execute("SELECT total, seq FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
            contributions = dict(db.execute("SELECT session, added FROM sessions").fetchall())
        except sqlite3.Error:
            self._reset()
            raise
        head = Head(*head_row) if head_row is not None else Head()
        self._ledger = meta["ledger"]
        if self._sidecar is None:
            epoch = self._check_sidecar(head, int(meta["epoch"]))
            meta["epoch"] = str(epoch)
        records = tuple(Record(*row) for row in reversed(rows))
        return Snapshot(meta["ledger"], int(meta["epoch"]), head, records, contributions)

    def _check_integrity(self) -> None:
        if str(self.path) == ":memory:" or not self.path.exists():
            return
        try:
            verdict = [row[0] for row in self.db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            self._reset()
            raise LedgerLost(f"the database {self.path} cannot be read ({exc}): restore a good copy") from None
        if verdict != ["ok"]:
            self._reset()
            raise LedgerLost(f"the database {self.path} is damaged ({verdict[0]}): restore a good copy")

    def _check_sidecar(self, head: Head, epoch: int) -> int:
        """Compare the database with the last seq committed before; open the sidecar for writing."""
        if str(self.path) == ":memory:":
            return epoch
        path = self.sidecar_path
        recorded = _read_sidecar(path)
        if recorded is not None:
            ledger, seq = recorded
            problem = None
            if ledger != self._ledger:
                problem = (
                    f"holds ledger {self._ledger} at update {head.seq}, but ledger {ledger} was being served, "
                    f"up to update {seq} (see {path})"
                )
            elif head.seq < seq:
                problem = f"ends at update {head.seq}, but update {seq} was acknowledged before (see {path})"
            if problem is not None:
                if not self.accept_loss:
                    raise LedgerLost(
                        f"the database {self.path} {problem}: it was damaged, replaced or restored from an older "
                        "copy. Restore the right file, or start with --accept-ledger-loss to carry on from here"
                    )
                epoch += 1
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(epoch),))
                log.warning("the database %s; carrying on as asked (epoch %d)", problem, epoch)
        self._sidecar = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._write_sidecar(head.seq)
        return epoch

    def _write_sidecar(self, seq: int) -> None:
        if self._sidecar is not None:
            # One fixed-width write: never torn by a process crash, never shorter than before.
            os.pwrite(self._sidecar, f"{self._ledger} {seq:020d}\n".encode(), 0)

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await self._run(lambda: self._apply(batch, at))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole, or rolled back (and the connection reopened next time)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._reset()
            raise

    def _apply(self, batch: Sequence[AddRequest], at: float) -> list[Outcome]:
        with self._transaction() as db:
            row = db.execute("SELECT total, seq FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
            head = Head(*row) if row is not None else Head()

            def applied_before(key: OpKey) -> OpRecord | None:
                seen = db.execute("SELECT seq, amount, undoes FROM updates WHERE session IS ? AND op = ?", key)
                found = seen.fetchone()
                return None if found is None else OpRecord(*found)

            result = apply_batch(head, batch, at=at, applied_before=applied_before)
            records = result.records
            db.executemany(
                f"INSERT INTO updates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.seq, r.at, r.amount, r.total, r.name, r.client, r.session, r.op, r.undoes) for r in records],
            )
            self._credit_sessions(db, records, at)
        if records:
            self._write_sidecar(result.head.seq)
        return result.outcomes

    def _credit_sessions(self, db: sqlite3.Connection, records: Sequence[Record], at: float) -> None:
        credits: dict[str, int] = {}
        for record in records:
            if record.session is not None:
                credits[record.session] = credits.get(record.session, 0) + record.amount
        for session, amount in credits.items():
            row = db.execute("SELECT added FROM sessions WHERE session = ?", (session,)).fetchone()
            added = saturating_add(0 if row is None else row[0], amount)
            db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)", (session, added, at))

    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        return await self._run(lambda: self._history(times))

    def _history(self, times: Sequence[float]) -> list[HistoryPoint]:
        points: list[HistoryPoint] = []
        try:
            for time in times:
                row = self.db.execute(
                    "SELECT seq, at, total FROM updates WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT 1", (time,)
                ).fetchone()
                if row is not None and (not points or points[-1].seq != row[0]):
                    points.append(HistoryPoint(*row))
        except sqlite3.Error:
            self._reset()
            raise
        return points

    async def prune(self, before: float) -> None:
        await self._run(lambda: self._prune(before))

    def _prune(self, before: float) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'pruned'").fetchone()
            since = float(row[0]) if row is not None else float("-inf")
            rows = db.execute(
                "SELECT seq, at FROM updates WHERE at >= ? AND at < ? ORDER BY seq", (since, before)
            ).fetchall()
            last_of_minute: dict[int, int] = {}
            for seq, at in rows:
                last_of_minute[int(at // 60)] = seq
            keep = set(last_of_minute.values())
            # Never the head: the total lives in the last row.
            head = db.execute("SELECT max(seq) FROM updates").fetchone()[0]
            db.executemany("DELETE FROM updates WHERE seq = ?", [(s,) for s, _ in rows if s not in keep and s != head])
            db.executemany("UPDATE updates SET session = NULL, op = NULL WHERE seq = ?", [(s,) for s in keep])
            db.execute("DELETE FROM sessions WHERE seen < ?", (before,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('pruned', ?)", (repr(before),))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        self._reset()
        if self._sidecar is not None:
            os.close(self._sidecar)
            self._sidecar = None


def _read_sidecar(path: Path) -> tuple[str, int] | None:
    try:
        ledger, seq = path.read_text().split()
        return ledger, int(seq)
    except FileNotFoundError:
        return None
    except ValueError:
        # Torn by a power cut mid-write: it can only have been behind the database.
        log.warning("the ledger sidecar %s is unreadable; rewriting it", path)
        return None
