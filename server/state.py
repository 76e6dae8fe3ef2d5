"""The domain: what an add is, what it produces, and the rule that keeps the total in range.

No I/O here. Stores apply these rules; the ledger and handler pass the results on.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.protocol import INT64_MAX, INT64_MIN, ErrorCode, HistoryPoint

__all__ = ["AddRequest", "Applied", "Duplicate", "Outcome", "Record", "Refused", "Snapshot", "next_total"]


@dataclass(frozen=True, slots=True)
class AddRequest:
    """One add as received. ``op`` is ``None`` for bare-number legacy clients (never deduplicated)."""

    amount: int
    name: str
    client: str
    session: str | None = None
    op: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One applied update, as stored and as broadcast."""

    seq: int
    at: float
    amount: int
    total: int
    name: str
    client: str
    session: str | None
    op: str | None

    def point(self) -> HistoryPoint:
        return HistoryPoint(seq=self.seq, at=self.at, total=self.total)


@dataclass(frozen=True, slots=True)
class Applied:
    """The add was stored as ``record``."""

    record: Record


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The op id was applied before, by update ``seq``; nothing changed."""

    seq: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The add was refused; nothing changed. ``code`` is an :class:`ErrorCode`."""

    code: str
    message: str


Outcome = Applied | Duplicate | Refused


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored state: the latest total and seq, and the most recent points."""

    total: int
    seq: int
    history: tuple[HistoryPoint, ...]


def next_total(total: int, amount: int) -> int | Refused:
    """The total after adding ``amount``, or a refusal if it leaves the 64-bit range."""
    result = total + amount
    if not INT64_MIN <= result <= INT64_MAX:
        return Refused(ErrorCode.OVERFLOW, f"adding {amount} would take the total outside the signed 64-bit range")
    return result
