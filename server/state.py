"""The domain: what an add is, what it produces, and the one rule that applies a batch of them.

No I/O here. A store loads what the rule needs (the head of the ledger and
the op ids seen before), calls :func:`apply_batch`, and saves the records it
returns, all in one transaction. The ledger and the handler pass the outcomes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tally.server.protocol import INT64_MAX, INT64_MIN, ErrorCode, HistoryPoint

__all__ = [
    "AddRequest",
    "Applied",
    "Batch",
    "Duplicate",
    "Head",
    "OpKey",
    "OpRecord",
    "Outcome",
    "Record",
    "Refused",
    "Snapshot",
    "apply_batch",
    "next_total",
    "saturating_add",
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
    undo: str | None = None  # the op (of the same session) this add takes back

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
    undoes: int | None = None  # the seq of the update this one took back

    def point(self) -> HistoryPoint:
        return HistoryPoint(seq=self.seq, at=self.at, total=self.total)

    def op_record(self) -> OpRecord:
        return OpRecord(self.seq, self.amount, self.undoes)


@dataclass(frozen=True, slots=True)
class OpRecord:
    """What a store remembers of an applied op: enough to answer a resend and to check an undo."""

    seq: int
    amount: int
    undoes: int | None = None


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
    """What a store holds when it is opened (or reloaded after a failure).

    ``recent`` are the latest records, oldest first (at most what the store
    was asked for); ``contributions`` what each session has added in all.
    """

    ledger: str
    epoch: int
    head: Head
    recent: tuple[Record, ...]
    contributions: dict[str, int]


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
        return Refused(ErrorCode.OVERFLOW, f"adding {amount:,} would take the total outside the signed 64-bit range")
    return result


def saturating_add(value: int, amount: int) -> int:
    """``value + amount`` held inside the 64-bit range: a session's contribution is shown, never refused."""
    return max(INT64_MIN, min(INT64_MAX, value + amount))


def _check_repeat(request: AddRequest, earlier: OpRecord, undoes: int | None) -> Outcome:
    if earlier.amount != request.amount or earlier.undoes != undoes:
        return Refused(
            ErrorCode.CONFLICT,
            f"op {request.op} was already used for {earlier.amount:+,} (update {earlier.seq}); use a new op id",
        )
    return Duplicate(earlier.seq)


def apply_batch(
    head: Head, batch: Sequence[AddRequest], *, at: float, applied_before: Callable[[OpKey], OpRecord | None]
) -> Batch:
    """Apply ``batch`` in order on top of ``head``: the one rule for an add.

    Per request:

    - an op id seen before (``applied_before`` finds it, or an earlier request
      of this batch used it) is a duplicate and changes nothing; if it came
      with a different amount it is a ``conflict``, never an ack;
    - zero is refused (it would tell everyone that nothing happened);
    - an undo must name an op of the same session with the opposite amount;
    - an add that would take the total out of the 64-bit range is refused;
    - anything else gets the next seq and becomes a record.

    A refusal changes nothing, so the requests after it apply as if it had
    never been sent.
    """
    total, seq = head.total, head.seq
    seen_here: dict[OpKey, OpRecord] = {}

    def lookup(key: OpKey) -> OpRecord | None:
        found = seen_here.get(key)
        return found if found is not None else applied_before(key)

    outcomes: list[Outcome] = []
    records: list[Record] = []
    for request in batch:
        undoes = None
        undone = None if request.undo is None else lookup((request.session, request.undo))
        if undone is not None:
            undoes = undone.seq
        key = request.key
        earlier = None if key is None else lookup(key)
        if earlier is not None:
            outcomes.append(_check_repeat(request, earlier, undoes))
            continue
        if request.amount == 0:
            outcomes.append(Refused(ErrorCode.INVALID_AMOUNT, "0 changes nothing; add a number other than zero"))
            continue
        if request.undo is not None and (undone is None or undone.amount != -request.amount):
            outcomes.append(
                Refused(
                    ErrorCode.INVALID_UNDO,
                    f"op {request.undo} is not an add of {-request.amount:+,} by this session that is still kept",
                )
            )
            continue
        new_total = next_total(total, request.amount)
        if isinstance(new_total, Refused):
            outcomes.append(new_total)
            continue
        seq, total = seq + 1, new_total
        record = Record(
            seq, at, request.amount, total, request.name, request.client, request.session, request.op, undoes
        )
        records.append(record)
        outcomes.append(Applied(record))
        if key is not None:
            seen_here[key] = record.op_record()
    return Batch(outcomes, records, Head(total, seq))
