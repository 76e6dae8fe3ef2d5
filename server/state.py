"""The domain: what an add is, what it produces, and the one rule that applies a batch of them.

No I/O here. A store loads what the rule needs (the head of the ledger and
the op ids seen before), calls :func:`apply_batch`, and saves the records it
returns, all in one transaction. The ledger and the handler pass the outcomes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from tally.server.protocol import INT64_MAX, INT64_MIN, ErrorCode, HistoryPoint
from tally.server.protocol.frozen import quick_init

__all__ = [
    "AddRequest",
    "Applied",
    "Batch",
    "Claim",
    "Duplicate",
    "Head",
    "OpKey",
    "OpRecord",
    "Outcome",
    "Record",
    "Refused",
    "Sealer",
    "Snapshot",
    "Witnessed",
    "apply_batch",
    "chain",
    "next_total",
    "saturating_add",
    "seal",
    "thin_to_minutes",
]

# (session, op): what makes a resend recognisable.
OpKey = tuple[str | None, str]


@quick_init
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


@quick_init
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
    # The history's fingerprint after this update (see chain): equal fingerprints at one seq mean one history.
    digest: str = ""

    def point(self) -> HistoryPoint:
        return HistoryPoint(seq=self.seq, at=self.at, total=self.total)

    def op_record(self) -> OpRecord:
        return OpRecord(self.seq, self.amount, self.undoes)


@quick_init
@dataclass(frozen=True, slots=True)
class OpRecord:
    """What a store remembers of an applied op: enough to answer a resend and to check an undo.

    ``undone_by`` is the seq of the update that took this op back, if one did: an op is undone once.
    """

    seq: int
    amount: int
    undoes: int | None = None
    undone_by: int | None = None


@dataclass(frozen=True, slots=True)
class Witnessed:
    """An applied add as the server that acknowledged it keeps it (``tally.server.witness``).

    Enough to make its op id known again, or to apply it again by its op id, if the
    store loses it: ``undo`` is the op it took back, if it was an undo.
    """

    epoch: int
    record: Record
    undo: str | None = None

    def request(self) -> AddRequest:
        """The add again, as it was received; one from the bare-number path gets an op id of its own here,
        so that applying it again is idempotent too (servers sharing a witness may both restore it)."""
        r = self.record
        if r.op is None:
            return AddRequest(r.amount, r.name, r.client, f"restored:{self.epoch}", str(r.seq))
        return AddRequest(r.amount, r.name, r.client, r.session, r.op, self.undo)


@quick_init
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
    """The latest total, the seq of the update that made it, and the history's fingerprint there."""

    total: int = 0
    seq: int = 0
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one server (or a dashboard's sealed resume) last saw of the ledger: the truth cannot be older."""

    ledger: str
    epoch: int
    head: Head


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
    # The ledger's own secret: it seals what the server tells clients (see seal).
    key: str = ""


@dataclass(frozen=True, slots=True)
class Batch:
    """What applying a batch produced: one outcome per request, the records to save, the new head.

    ``undone`` are the ops (of earlier batches) this batch took back, each with the seq that did:
    the store marks them, so that none is undone twice.
    """

    outcomes: list[Outcome]
    records: list[Record]
    head: Head
    undone: list[tuple[OpKey, int]]


def chain(previous: str, seq: int, session: str | None, op: str | None, amount: int, total: int) -> str:
    """The history's fingerprint after update ``seq``: a digest chained through every update.

    Two stores (or a store and what a server or a dashboard saw) that agree on the
    fingerprint at one seq hold the same history up to it; a store restored from an
    older copy and grown again past that seq does not. ``lua/apply.lua`` computes the
    same digest (SHA-1 over the same text, the first 16 hex digits).
    """
    text = f"{previous}|{seq}|{session or ''}|{op or ''}|{amount}|{total}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def seal(key: str, ledger: str, epoch: int, seq: int, total: int, digest: str) -> str:
    """Proof that a server of this ledger said "update ``seq`` left ``total`` with fingerprint ``digest``".

    Dashboards send the last one back when they resume; only a server that knows the
    ledger's key can make one, so a client cannot claim a history that never was.
    """
    return Sealer(key)(ledger, epoch, seq, total, digest)


class Sealer:
    """:func:`seal` with one key, for every update: HMAC-SHA256 (RFC 2104) written out over its two keyed
    states (the key padded with 0x36s and with 0x5Cs, each hashed once here), copied for each seal. The same
    bytes as ``hmac.new(key, text, sha256)`` at under half the work of copying an HMAC object."""

    __slots__ = ("_inner", "_outer", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        raw = key.encode()
        if len(raw) > _SHA256_BLOCK:
            raw = hashlib.sha256(raw).digest()
        raw = raw.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(raw.translate(_IPAD))
        self._outer = hashlib.sha256(raw.translate(_OPAD))

    def __call__(self, ledger: str, epoch: int, seq: int, total: int, digest: str) -> str:
        inner = self._inner.copy()
        inner.update(f"{ledger}|{epoch}|{seq}|{total}|{digest}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:16]


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def thin_to_minutes(moments: Iterable[tuple[int, float]]) -> set[int]:
    """Of ``(seq, at)`` pairs in seq order, the seqs kept past retention: the last update of each minute."""
    last_of_minute: dict[int, int] = {}
    for seq, at in moments:
        last_of_minute[int(at // 60)] = seq
    return set(last_of_minute.values())


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
    - an undo must name an op of the same session with the opposite amount, not undone before;
    - an add that would take the total out of the 64-bit range is refused;
    - anything else gets the next seq and becomes a record.

    A refusal changes nothing, so the requests after it apply as if it had
    never been sent.
    """
    total, seq, digest = head.total, head.seq, head.digest
    # The ops of this batch so far: a record (its op record is made only if a later request names it) or,
    # once undone here, its op record marked so.
    seen_here: dict[OpKey, Record | OpRecord] = {}
    undone_here: list[tuple[OpKey, int]] = []

    def lookup(key: OpKey) -> OpRecord | None:
        found = seen_here.get(key)
        if found is None:
            return applied_before(key)
        return found.op_record() if isinstance(found, Record) else found

    outcomes: list[Outcome] = []
    records: list[Record] = []
    for request in batch:
        undone = None if request.undo is None else lookup((request.session, request.undo))
        undoes = None if undone is None else undone.seq
        key = request.key
        earlier = None if key is None else lookup(key)
        unchanged = _unchanged(request, earlier, undone, undoes)
        if unchanged is not None:
            outcomes.append(unchanged)
            continue
        new_total = next_total(total, request.amount)
        if isinstance(new_total, Refused):
            outcomes.append(new_total)
            continue
        seq, total = seq + 1, new_total
        digest = chain(digest, seq, request.session, request.op, request.amount, total)
        record = Record(
            seq, at, request.amount, total, request.name, request.client, request.session, request.op, undoes, digest
        )
        records.append(record)
        outcomes.append(Applied(record))
        if key is not None:
            seen_here[key] = record
        if undone is not None and request.undo is not None:
            undone_key = (request.session, request.undo)
            seen_here[undone_key] = replace(undone, undone_by=seq)
            undone_here.append((undone_key, seq))
    return Batch(outcomes, records, Head(total, seq, digest), undone_here)


def _unchanged(
    request: AddRequest, earlier: OpRecord | None, undone: OpRecord | None, undoes: int | None
) -> Outcome | None:
    """What ``request`` gets if it changes nothing (a repeat's outcome, or a refusal); None if it may apply."""
    if earlier is not None:
        return _check_repeat(request, earlier, undoes)
    if request.amount == 0:
        return Refused(ErrorCode.INVALID_AMOUNT, "0 changes nothing; add a number other than zero")
    if request.undo is not None:
        return _check_undo(request, undone)
    return None


def _check_undo(request: AddRequest, undone: OpRecord | None) -> Refused | None:
    """Why an undo cannot apply (None if it can): it names an op of this session, of the opposite amount, once."""
    if undone is None or undone.amount != -request.amount:
        message = f"op {request.undo} is not an add of {-request.amount:+,} by this session that is still kept"
        return Refused(ErrorCode.INVALID_UNDO, message)
    if undone.undone_by is not None:
        return Refused(ErrorCode.INVALID_UNDO, f"op {request.undo} was already undone (update {undone.undone_by})")
    return None
