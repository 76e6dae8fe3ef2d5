"""The durable default store: SQLite in WAL mode, one transaction per batch.

Each applied add is a row of ``updates``; the total is the last row's total,
and the unique index on (session, op) is what makes a resend a no-op, across
restarts too. ``synchronous=FULL`` makes a commit survive power loss as well
as a process crash; group commit in the ledger pays for the fsync.

Past the retention window, rows lose their op id (a resend that old would
apply again, as docs/guarantees.md says) and thin out to one a minute, which
is all a chart of the last day needs; ``meta`` keeps the ledger's id, epoch
and key.

A small sidecar file (``<db>.ledger``, see :mod:`tally.server.store.sidecar`)
records the last update committed, with the history's fingerprint there. It
is written after each commit, outside the database, so that a database that
went backwards (restored from an old copy, a damaged WAL, a file truncated to
nothing) is noticed at start instead of being served as if nothing happened.

The file itself is watched while the server runs: a database deleted, moved
or replaced under it is noticed after the next commit, before its acks, and
adds are refused until the file is back (:class:`StoreGone`).

sqlite3 blocks, so every write runs on one dedicated thread, which is also
what keeps the single writing connection safe; history is read on a second
thread with its own connection (WAL lets readers and the writer work at
once), so that a burst of history requests never delays a commit. After any
failure (disk full, locked, corrupt) a connection is dropped and the next
call opens a fresh one, so the store recovers by itself once the fault clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tally.server.protocol import HistoryPoint
from tally.server.protocol.files import make_private
from tally.server.state import (
    AddRequest,
    Head,
    OpKey,
    OpRecord,
    Outcome,
    Record,
    Snapshot,
    apply_batch,
    chain,
    saturating_add,
    thin_to_minutes,
)
from tally.server.store.base import LedgerLost, Store, StoreGone
from tally.server.store.sidecar import Sidecar

__all__ = ["SQLiteStore", "integrity"]

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
# Columns added after the first release, with what older databases get.
_UPGRADES = {"undoes": "ALTER TABLE updates ADD COLUMN undoes INTEGER",
             "digest": "ALTER TABLE updates ADD COLUMN digest TEXT"}  # fmt: skip
_COLUMNS = "seq, at, amount, total, name, client, session, op, undoes, digest"
# An op, and the update that undid it if one did (an op is undone once).
_OP_QUERY = (
    "SELECT u.seq, u.amount, u.undoes, (SELECT v.seq FROM updates v WHERE v.undoes = u.seq LIMIT 1) "
    "FROM updates u WHERE u.session IS ? AND u.op = ?"
)


class SQLiteStore(Store):
    def __init__(self, path: Path, *, busy_timeout: float = 5.0, accept_loss: bool = False) -> None:
        """``accept_loss`` starts even if the ledger went backwards (a new epoch begins)."""
        self.path = path
        # How long a write waits for another process's lock before failing.
        self.busy_timeout = busy_timeout
        self.accept_loss = accept_loss
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-sqlite")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-sqlite-read")
        self._db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._sidecar: Sidecar | None = None  # once checked, at the first open
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file this ledger lives in
        self._ledger = ""
        self._closed = False

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, work)

    # -- connections -----------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """The writing connection, opened on first use and again after a failure."""
        if self._db is None:
            self._check_file()
            if not self.in_memory:
                make_private(self.path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
            if self._identity is None and not self.in_memory:
                stat = os.stat(self.path)
                self._identity = (stat.st_dev, stat.st_ino)
        return self._db

    def _check_file(self) -> None:
        """Raise :class:`StoreGone` if the path no longer names the file this ledger was opened from."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise StoreGone(f"the database {self.path} was deleted or moved away while the server ran") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise StoreGone(f"the database {self.path} was replaced by another file while the server ran")

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Configure a new connection and make sure the schema exists (upgrading an older one)."""
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(updates)")}
        for column, upgrade in _UPGRADES.items():
            if column not in columns:
                db.execute(upgrade)
        db.execute("CREATE INDEX IF NOT EXISTS updates_by_undoes ON updates (undoes) WHERE undoes IS NOT NULL")
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('ledger', ?), ('epoch', '1'), ('key', ?)",
            (uuid.uuid4().hex[:16], secrets.token_hex(16)),
        )

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -- opening -------------------------------------------------------------------------

    async def open(self, *, recent: int) -> Snapshot:
        return await self._run(lambda: self._open(recent))

    def _open(self, recent: int) -> Snapshot:
        try:
            if self._sidecar is None:
                self._check_integrity()
            db = self.db
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute(f"SELECT {_COLUMNS} FROM updates ORDER BY seq DESC LIMIT ?", (recent,)).fetchall()
            head = self._head(db, meta["ledger"])
            contributions = dict(db.execute("SELECT session, added FROM sessions").fetchall())
        except sqlite3.Error:
            self._reset()
            raise
        self._ledger = meta["ledger"]
        if self._sidecar is None:
            meta["epoch"] = str(self._check_sidecar(head, int(meta["epoch"])))
        records = tuple(_record(row) for row in reversed(rows))
        return Snapshot(meta["ledger"], int(meta["epoch"]), head, records, contributions, meta["key"])

    @staticmethod
    def _head(db: sqlite3.Connection, ledger: str) -> Head:
        row = db.execute("SELECT total, seq, digest FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return Head(0, 0, ledger)
        total, seq, digest = row
        # A database from before fingerprints starts its chain at its head.
        return Head(total, seq, digest or chain(ledger, seq, None, None, 0, total))

    def _check_integrity(self) -> None:
        if self.in_memory or not self.path.exists():
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
        """Compare the database with the last update committed before; open the sidecar for writing."""
        if self.in_memory:
            return epoch
        sidecar = Sidecar(self.path.with_name(self.path.name + ".ledger"))
        problem = sidecar.compare(self._ledger, head, self._digest_at)
        if problem is not None:
            if not self.accept_loss:
                raise LedgerLost(
                    f"the database {self.path} {problem}: it was damaged, replaced or restored from an older "
                    "copy. Restore the right file, or start with --accept-ledger-loss to carry on from here"
                )
            epoch += 1
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(epoch),))
            log.warning("the database %s; carrying on as asked (epoch %d)", problem, epoch)
        sidecar.open()
        sidecar.write(self._ledger, head)
        self._sidecar = sidecar
        return epoch

    def _digest_at(self, seq: int) -> str | None:
        return _fetch_digest(self.db, seq)

    async def start_epoch(self) -> int:
        def bump() -> int:
            with self._transaction() as db:
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'")
                return int(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

        return await self._run(bump)

    async def digest_at(self, seq: int) -> str | None:
        return await self._read(lambda db: _fetch_digest(db, seq))

    # -- adding ----------------------------------------------------------------------------

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
            head = self._head(db, self._ledger)

            def applied_before(key: OpKey) -> OpRecord | None:
                found = db.execute(_OP_QUERY, key).fetchone()
                return None if found is None else OpRecord(*found)

            result = apply_batch(head, batch, at=at, applied_before=applied_before)
            records = result.records
            db.executemany(
                f"INSERT INTO updates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.seq, r.at, r.amount, r.total, r.name, r.client, r.session, r.op, r.undoes, r.digest)
                 for r in records],
            )  # fmt: skip
            self._credit_sessions(db, records, at)
        # Committed; but if the file was deleted or replaced meanwhile, it went where nobody will find it:
        # no ack for it (the adders resend, and are refused until the file is back).
        if not self.in_memory:
            self._check_file()
        if records and self._sidecar is not None:
            self._sidecar.write(self._ledger, result.head)
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

    # -- reading, off the writer's thread ----------------------------------------------------

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._read_db is None:
                self._check_file()
                self._read_db = sqlite3.connect(self.path, check_same_thread=False)
                self._read_db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            try:
                return work(self._read_db)
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._read_db.close()
                self._read_db = None
                raise

        if self.in_memory:  # a private in-memory database is seen by its one connection only
            return await self._run(lambda: work(self.db))
        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        return await self._read(lambda db: _history(db, times))

    # -- retention -------------------------------------------------------------------------

    async def prune(self, before: float) -> None:
        await self._run(lambda: self._prune(before))

    def _prune(self, before: float) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'pruned'").fetchone()
            since = float(row[0]) if row is not None else float("-inf")
            rows = db.execute(
                "SELECT seq, at FROM updates WHERE at >= ? AND at < ? ORDER BY seq", (since, before)
            ).fetchall()
            keep = thin_to_minutes(rows)
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
        self._writer.shutdown(wait=True)

        def close_reader() -> None:
            if self._read_db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._read_db.close()
                self._read_db = None

        self._reader.submit(close_reader).result()
        self._reader.shutdown(wait=True)

    def _close(self) -> None:
        self._reset()
        if self._sidecar is not None:
            self._sidecar.close()
            self._sidecar = None


def integrity(path: Path) -> list[str]:
    """SQLite's full integrity check of the file at ``path`` (slow on a large file): ["ok"], or what is wrong."""
    if not path.exists():
        raise LedgerLost(f"there is no database at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [f"the file cannot be read as a database ({exc})"]
    finally:
        db.close()


def _record(row: tuple[int, float, int, int, str, str, str | None, str | None, int | None, str | None]) -> Record:
    seq, at, amount, total, name, client, session, op, undoes, digest = row
    return Record(seq, at, amount, total, name, client, session, op, undoes, digest or "")


def _fetch_digest(db: sqlite3.Connection, seq: int) -> str | None:
    row = db.execute("SELECT digest FROM updates WHERE seq = ?", (seq,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _history(db: sqlite3.Connection, times: Sequence[float]) -> list[HistoryPoint]:
    points: list[HistoryPoint] = []
    for time in times:
        row = db.execute(
            "SELECT seq, at, total FROM updates WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT 1", (time,)
        ).fetchone()
        if row is not None and (not points or points[-1].seq != row[0]):
            points.append(HistoryPoint(*row))
    return points
