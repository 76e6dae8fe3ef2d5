"""The witness: this machine's own record of the adds its servers acknowledged on a shared ledger.

Redis can lose what it acknowledged, the way real deployments do: a backup restored,
a lagging replica promoted, ``FLUSHALL``. So every server on a shared store writes
each batch it applied here, group-committed before any of its acks goes out (one
fsync a batch, as the SQLite store pays), with the newest state it saw of the ledger
(ledger, epoch, seq, total, fingerprint) and the ledger's key. When the store is found
rewound, the servers carry the ledger on from the newest state any of them saw and
restore, from their witnesses, the op ids of what they acknowledged (so that resends
stay duplicates) and the adds the store never had (see :mod:`tally.server.repair`).

It is a SQLite file (``witness.db`` in the user's state directory by default), shared
by the servers of one machine, private to its user (0600 in a 0700 directory). Adds
are kept for the retention window (op ids are forgotten after it anyway); the newest
state of each ledger is kept for good: it is one row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import platformdirs

from tally.server.protocol.files import make_private
from tally.server.state import Head, Record, Witnessed
from tally.server.store.worker import Worker

__all__ = ["Mark", "Witness", "default_witness_path"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    ledger TEXT PRIMARY KEY,
    epoch  INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    total  INTEGER NOT NULL,
    digest TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    place  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS adds (
    ledger  TEXT    NOT NULL,
    epoch   INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    at      REAL    NOT NULL,
    amount  INTEGER NOT NULL,
    total   INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    client  TEXT    NOT NULL,
    session TEXT,
    op      TEXT,
    undo    TEXT,
    undoes  INTEGER,
    digest  TEXT    NOT NULL,
    PRIMARY KEY (ledger, epoch, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS adds_by_at ON adds (at);
CREATE TABLE IF NOT EXISTS repairs (
    ledger TEXT NOT NULL,
    round  TEXT NOT NULL,
    PRIMARY KEY (ledger, round)
) WITHOUT ROWID;
"""
# The newest state wins: a later epoch, or a later seq in the same epoch.
_NOTE = """
INSERT INTO marks VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (ledger) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, total = excluded.total,
    digest = excluded.digest, key = CASE WHEN excluded.key = '' THEN marks.key ELSE excluded.key END,
    place = excluded.place
WHERE excluded.epoch > marks.epoch OR (excluded.epoch = marks.epoch AND excluded.seq > marks.seq)
"""


def default_witness_path() -> Path:
    return platformdirs.user_state_path("tally") / "witness.db"


@dataclass(frozen=True, slots=True)
class Mark:
    """The newest state this machine saw of one ledger, with its key and where it lived."""

    ledger: str
    epoch: int
    head: Head
    key: str
    place: str


class Witness:
    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._worker = Worker("tally-witness")
        self._db: sqlite3.Connection | None = None
        # Per ledger, the epoch and seqs this process recorded that no note has covered yet: a note
        # leaves them out (they are written, with more than a note knows), which on one server is every add.
        self._recorded: dict[str, tuple[int, set[int]]] = {}

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            try:
                return work(self._connection())
            except sqlite3.Error:
                self._reset()
                raise

        return await self._worker.run(run)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # Private before SQLite writes a byte into it, whatever the umask (its WAL takes the same mode).
            make_private(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _reset(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def record(self, ledger: str, key: str, place: str, entries: Sequence[Witnessed]) -> None:
        """Keep ``entries`` (applied by this server, about to be acknowledged), durably: one fsync in all."""
        if not entries:
            return
        last = entries[-1]

        def write(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA synchronous=FULL")
            with _transaction(db):
                db.executemany(
                    "INSERT OR REPLACE INTO adds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(ledger, e.epoch, r.seq, r.at, r.amount, r.total, r.name, r.client, r.session, r.op, e.undo,
                      r.undoes, r.digest) for e in entries for r in (e.record,)],
                )  # fmt: skip
                head = last.record
                db.execute(_NOTE, (ledger, last.epoch, head.seq, head.total, head.digest, key, place))

        await self._run(write)
        epoch, seqs = self._recorded.get(ledger, (last.epoch, set()))
        if epoch != last.epoch:
            seqs = set()
        seqs.update(entry.record.seq for entry in entries if entry.epoch == last.epoch)
        self._recorded[ledger] = (last.epoch, seqs)

    async def note(
        self, ledger: str, epoch: int, head: Head, key: str, place: str, seen: Sequence[Record] = ()
    ) -> None:
        """The newest state seen (read back from the store), with the op ids of the adds ``seen`` on the way to it:
        kept across a crash of this process, not fsynced.

        The op ids go with the state in one transaction because a repair carries the ledger on from the newest
        state anyone saw: an add another server applied and died before it was acknowledged is in that state, and
        its resend must stay a duplicate, so whoever claims the state must know its op id.
        """
        recorded_epoch, recorded = self._recorded.get(ledger, (epoch, set()))
        mine = recorded if recorded_epoch == epoch else set()
        rows = [(ledger, epoch, r.seq, r.at, r.amount, r.total, r.name, r.client, r.session, r.op, r.undoes, r.digest)
                for r in seen if r.op is not None and r.seq not in mine]  # fmt: skip
        if recorded_epoch < epoch:
            self._recorded.pop(ledger, None)
        elif recorded_epoch == epoch and recorded:
            self._recorded[ledger] = (epoch, {seq for seq in recorded if seq > head.seq})

        def write(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA synchronous=NORMAL")
            with _transaction(db):
                db.executemany("INSERT OR IGNORE INTO adds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", rows)
                db.execute(_NOTE, (ledger, epoch, head.seq, head.total, head.digest, key, place))

        await self._run(write)

    async def mark(self, ledger: str) -> Mark | None:
        def read(db: sqlite3.Connection) -> Mark | None:
            row = db.execute("SELECT * FROM marks WHERE ledger = ?", (ledger,)).fetchone()
            return None if row is None else _mark(row)

        return await self._run(read)

    async def marks(self, place: str) -> list[Mark]:
        """Every ledger this machine saw at ``place`` (a store URL and prefix), newest first."""

        def read(db: sqlite3.Connection) -> list[Mark]:
            rows = db.execute("SELECT * FROM marks WHERE place = ? ORDER BY epoch DESC, seq DESC", (place,))
            return [_mark(row) for row in rows.fetchall()]

        return await self._run(read)

    async def entries(self, ledger: str, epoch: int) -> list[Witnessed]:
        """The adds this machine's servers acknowledged in ``epoch`` of ``ledger``, in seq order."""

        def read(db: sqlite3.Connection) -> list[Witnessed]:
            rows = db.execute(
                "SELECT epoch, seq, at, amount, total, name, client, session, op, undo, undoes, digest FROM adds "
                "WHERE ledger = ? AND epoch = ? ORDER BY seq",
                (ledger, epoch),
            )
            return [
                Witnessed(epoch, Record(seq, at, amount, total, name, client, session, op, undoes, digest), undo)
                for epoch, seq, at, amount, total, name, client, session, op, undo, undoes, digest in rows.fetchall()
            ]

        return await self._run(read)

    async def repaired(self, ledger: str, round_: str) -> None:
        await self._run(lambda db: db.execute("INSERT OR IGNORE INTO repairs VALUES (?, ?)", (ledger, round_)))

    async def has_repaired(self, ledger: str, round_: str) -> bool:
        def read(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT 1 FROM repairs WHERE ledger = ? AND round = ?", (ledger, round_)).fetchone()
            return row is not None

        return await self._run(read)

    async def trim(self, before: float) -> None:
        """Forget adds older than ``before`` (their op ids are forgotten by the store by then)."""
        await self._run(lambda db: db.execute("DELETE FROM adds WHERE at < ?", (before,)))

    async def close(self) -> None:
        await self._run(lambda db: self._reset())
        self._worker.close()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def _mark(row: tuple[str, int, int, int, str, str, str]) -> Mark:
    ledger, epoch, seq, total, digest, key, place = row
    return Mark(ledger, epoch, Head(total, seq, digest), key, place)
