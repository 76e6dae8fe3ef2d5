"""The domain: what an add is, what it produces, and the one rule that applies a batch of them.

No I/O here. A store loads what the rule needs (the head of the ledger and
the op ids seen before), calls :func:`apply_batch`, and saves the records it
returns, all in one transaction. The ledger and the handler pass the outcomes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.protocol import INT64_MAX, INT64_MIN, ErrorCode, HistoryPoint

__all__ = [
    "AddRequest",
    "Applied",
    "Batch",
    "Duplicate",
    "Head",
    "OpKey",
    "Outcome",
    "Record",
    "Refused",
    "Snapshot",
    "apply_batch",
    "next_total",
]

# (session, op): what makes a resend recognisable.
OpKey = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class AddRequest:
    """One add as received. ``op`` is ``None`` for bare-number legacy clients (never deduplicated)."""

    amount: int
    name: str
    client: str
    session: str | None = None
    op: str | None = None

    @property
    def key(self) -> OpKey | None:
        return None if self.op is None else (self.session, self.op)


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
class Head:
    """The latest total and the seq of the update that made it."""

    total: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a store holds when it is opened: its head and the most recent points."""

    total: int
    seq: int
    history: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """What applying a batch produced: one outcome per request, the records to save, the new head."""

    outcomes: list[Outcome]
    records: list[Record]
    head: Head


def next_total(total: int, amount: int) -> int | Refused:
    """The total after adding ``amount``, or a refusal if it leaves the 64-bit range."""
    result = total + amount
    if not INT64_MIN <= result <= INT64_MAX:
        return Refused(ErrorCode.OVERFLOW, f"adding {amount} would take the total outside the signed 64-bit range")
    return result


def apply_batch(
    head: Head, batch: Sequence[AddRequest], *, at: float, applied_before: Callable[[OpKey], int | None]
) -> Batch:
    """Apply ``batch`` in order on top of ``head``: the one rule for an add.

    Per request: an op id seen before (``applied_before`` gives the seq that
    applied it, or an earlier request of this batch did) is a duplicate and
    changes nothing; an add that would overflow the total is refused; anything
    else gets the next seq and becomes a record. A refusal changes nothing, so
    the requests after it apply as if it had never been sent.
    """
    total, seq = head.total, head.seq
    seen_here: dict[OpKey, int] = {}
    outcomes: list[Outcome] = []
    records: list[Record] = []
    for request in batch:
        key = request.key
        if key is not None:
            earlier = seen_here.get(key)
            if earlier is None:
                earlier = applied_before(key)
            if earlier is not None:
                outcomes.append(Duplicate(earlier))
                continue
        new_total = next_total(total, request.amount)
        if isinstance(new_total, Refused):
            outcomes.append(new_total)
            continue
        seq, total = seq + 1, new_total
        record = Record(seq, at, request.amount, total, request.name, request.client, request.session, request.op)
        records.append(record)
        outcomes.append(Applied(record))
        if key is not None:
            seen_here[key] = seq
    return Batch(outcomes, records, Head(total, seq))
