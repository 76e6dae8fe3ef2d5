"""What the SQLite store reads, as queries on a connection: records, the op ids a batch names, history.

A batch's op ids (its own, and the ones its undos name) are looked up in one query
(:func:`ops_named`), not one a request, and its sessions are credited with one read and
one write (:func:`credit_sessions`), not two statements a session: a statement from
Python costs more than SQLite's search of the index for each key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from tally.server.protocol import HistoryPoint
from tally.server.state import AddRequest, OpKey, OpRecord, Record, saturating_add

__all__ = ["COLUMNS", "credit_sessions", "fetch_digest", "ops_named", "points_at", "record_of"]

COLUMNS = "seq, at, amount, total, name, client, session, op, undoes, digest"
# An op, and the update that undid it if one did (an op is undone once).
_OP_QUERY = (
    "SELECT u.seq, u.amount, u.undoes, (SELECT v.seq FROM updates v WHERE v.undoes = u.seq LIMIT 1) "
    "FROM updates u WHERE u.session IS ? AND u.op = ?"
)
# The same for many (session, op) pairs at once: a search of the unique index for each.
_OPS_QUERY = (
    "WITH asked(session, op) AS (VALUES {pairs}) "
    "SELECT u.session, u.op, u.seq, u.amount, u.undoes, (SELECT v.seq FROM updates v WHERE v.undoes = u.seq LIMIT 1) "
    "FROM asked JOIN updates u ON u.session = asked.session AND u.op = asked.op"
)
# Pairs a query: two parameters each, well under SQLite's limit on parameters.
_PAIRS_PER_QUERY = 500


def ops_named(db: sqlite3.Connection, batch: Sequence[AddRequest]) -> Callable[[OpKey], OpRecord | None]:
    """``applied_before`` for :func:`~tally.server.state.apply_batch` on ``batch``: what was stored for each op
    the batch names, read in one query (per 500); a key the batch did not name is looked up on its own."""
    asked = {key for r in batch for key in ((r.session, r.op), (r.session, r.undo)) if key[1] is not None}
    # A NULL session never equals anything in a join: those few are looked up one by one (IS, not =).
    pairs = [key for key in asked if key[0] is not None]
    found: dict[OpKey, OpRecord] = {}
    for start in range(0, len(pairs), _PAIRS_PER_QUERY):
        chunk = pairs[start : start + _PAIRS_PER_QUERY]
        query = _OPS_QUERY.format(pairs=", ".join(["(?, ?)"] * len(chunk)))
        for session, op, seq, amount, undoes, undone_by in db.execute(query, [v for pair in chunk for v in pair]):
            found[session, op] = OpRecord(seq, amount, undoes, undone_by)

    def applied_before(key: OpKey) -> OpRecord | None:
        if key in found:
            return found[key]
        if key[0] is not None and key in asked:
            return None  # asked, and not there
        row = db.execute(_OP_QUERY, key).fetchone()
        return None if row is None else OpRecord(*row)

    return applied_before


def credit_sessions(db: sqlite3.Connection, records: Sequence[Record], at: float) -> None:
    """Add each session's adds in ``records`` to what it added in all (held inside the 64-bit range), seen ``at``."""
    credits: dict[str, int] = {}
    for record in records:
        if record.session is not None:
            credits[record.session] = credits.get(record.session, 0) + record.amount
    sessions = list(credits)
    added: dict[str, int] = {}
    for start in range(0, len(sessions), _PAIRS_PER_QUERY):
        chunk = sessions[start : start + _PAIRS_PER_QUERY]
        marks = ", ".join(["?"] * len(chunk))
        added.update(db.execute(f"SELECT session, added FROM sessions WHERE session IN ({marks})", chunk).fetchall())
    db.executemany(
        "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
        [(session, saturating_add(added.get(session, 0), amount), at) for session, amount in credits.items()],
    )


def record_of(row: tuple[int, float, int, int, str, str, str | None, str | None, int | None, str | None]) -> Record:
    seq, at, amount, total, name, client, session, op, undoes, digest = row
    return Record(seq, at, amount, total, name, client, session, op, undoes, digest or "")


def fetch_digest(db: sqlite3.Connection, seq: int) -> str | None:
    row = db.execute("SELECT digest FROM updates WHERE seq = ?", (seq,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def points_at(db: sqlite3.Connection, times: Sequence[float]) -> list[HistoryPoint]:
    """The last update at or before each of ``times`` (ascending), without repeats.

    One statement for them all: SQLite walks the index for every moment with the GIL released, where a
    query a moment (500 for a page) held it between each, and the event loop waited for it."""
    if not times:
        return []
    moments = ",".join(["(?)"] * len(times))
    rows = db.execute(
        f"WITH moments(time) AS (VALUES {moments}) SELECT u.seq, u.at, u.total FROM moments JOIN updates AS u"
        " ON u.seq = (SELECT seq FROM updates WHERE at <= moments.time ORDER BY at DESC, seq DESC LIMIT 1)"
        " ORDER BY moments.time",
        tuple(times),
    ).fetchall()
    points: list[HistoryPoint] = []
    for row in rows:
        if not points or points[-1].seq != row[0]:
            points.append(HistoryPoint(*row))
    return points
