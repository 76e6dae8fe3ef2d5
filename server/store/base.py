"""The interface every store implements, and the part only shared stores add: everything callers use.

A store loads and saves; the rule for an add is :func:`tally.server.state.apply_batch`,
which every store calls inside its own transaction (Redis runs the same rule in Lua).
Callers never probe a store for what it can do: a :class:`SharedStore` (many servers
on one ledger) declares its follow, presence and recovery faces here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from tally.server.protocol import ClientInfo, HistoryPoint
from tally.server.protocol.messages import PresenceEvent
from tally.server.state import AddRequest, Claim, Head, Outcome, Record, Snapshot, Witnessed

__all__ = [
    "Beat",
    "Claim",
    "LedgerLost",
    "Loaded",
    "NoLedger",
    "PresenceEntry",
    "Restore",
    "RewoundMark",
    "SharedStore",
    "Store",
    "StoreError",
    "StoreGone",
    "StoreRewound",
    "StoreUnavailable",
    "sample_times",
]


class StoreError(Exception):
    """Something is wrong with the store itself, not with one add; the message is one line for people."""


class LedgerLost(StoreError):
    """The stored ledger is damaged, went backwards or vanished: refusing to serve it as if nothing happened.

    The message is one line for the operator, saying what was found and how to carry on anyway.
    """


class NoLedger(StoreError):
    """The store holds no ledger (and a server never creates one by itself: ``tally-server init`` does)."""


class StoreGone(StoreError):
    """The file the ledger lives in was deleted, moved or replaced while the server ran."""


class StoreUnavailable(StoreError):
    """The store does not answer now (down, loading, unreachable): worth waiting for."""


class StoreRewound(StoreError):
    """The store no longer holds history that was acknowledged: restored from an older copy, emptied, replaced."""


class Store(ABC):
    """Keeps the total, the applied op ids and the history of updates.

    ``apply`` is atomic per batch: either every outcome in it is stored, or it
    raises and nothing is. Callers acknowledge nothing until it returns. After
    a failure a store should recover by itself on a later call when its
    resource (disk, lock, server) does.
    """

    # Many servers on one ledger (Redis): updates come back through the store's stream.
    shared: ClassVar[bool] = False

    @abstractmethod
    async def open(self, *, recent: int) -> Snapshot:
        """Prepare the store (again, after a failure) and return what it holds, with ``recent`` records."""

    @abstractmethod
    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        """Apply ``batch`` in order with :func:`~tally.server.state.apply_batch`; one outcome per request."""

    @abstractmethod
    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        """The last update at or before each of ``times`` (ascending), without repeats."""

    async def digest_at(self, seq: int) -> str | None:
        """The history's fingerprint after update ``seq``, if the store still has it (None: not known)."""
        return None

    async def start_epoch(self) -> int:
        """Carry on from what the store holds in a new epoch (an operator accepted a loss); the new epoch."""
        raise StoreError("this store's epoch moves with the repair of its ledger")

    @abstractmethod
    async def prune(self, before: float) -> None:
        """Forget op ids (and the detail of updates) older than ``before``; keep one point a minute."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources; everything ``apply`` returned is already durable."""


@dataclass(frozen=True, slots=True)
class RewoundMark:
    """A shared ledger marked rewound: every server refuses adds until it is repaired (``tally.server.repair``)."""

    round: str  # names this repair
    since: float  # Unix seconds
    found: int  # the seq the store was found at
    reason: str


@dataclass(frozen=True, slots=True)
class Restore:
    """A rewind being repaired: the history is carried on from ``base`` (the newest claim) in ``epoch``.

    Every server re-applies, from its witness, the adds it acknowledged after ``base``
    and makes known again the op ids of the ones at or before it; ``round`` names this repair.
    """

    round: str
    ledger: str
    from_epoch: int
    epoch: int
    base: Head
    found: int  # where the store was when the repair began


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a shared store holds when a server starts following it."""

    snapshot: Snapshot
    position: str  # the stream entry to follow from
    clients: tuple[ClientInfo, ...]  # the people online on every live server
    rewound: RewoundMark | None = None
    repair: Restore | None = None  # the last repair, kept for servers that were away during it


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """A join, leave or rename, from the shared stream, in order with the updates around it."""

    event: PresenceEvent
    client: ClientInfo


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat learned: whether this server was still registered, who died, and the ledger's state."""

    alive: bool
    reaped: tuple[str, ...]
    epoch: int  # the ledger's epoch in the store now (0: no ledger)
    rewound: RewoundMark | None
    round: str  # the repair under way, or the last one ("" if none)


class SharedStore(Store):
    """A ledger that many servers serve at once: they follow one stream of updates and presence.

    Every server applies adds through :meth:`apply` and publishes what it reads
    back with :meth:`read`, its own adds included, so that every dashboard on
    every server sees one order. :meth:`saw` tells the store how far this server
    has read, so that it refuses to apply on top of a store that went backwards.
    The rest is the repair of a rewound ledger, step by step (``tally.server.repair``).
    """

    shared: ClassVar[bool] = True

    @abstractmethod
    async def create(self) -> str:
        """Create a new, empty ledger (``tally-server init``) and return its id; raise if one is there."""

    @abstractmethod
    async def load(self, *, recent: int) -> Loaded:
        """The snapshot, where to follow from, and who is online; raises :class:`NoLedger` if there is none."""

    @abstractmethod
    def saw(self, ledger: str, epoch: int, head: Head) -> None:
        """This server has read up to ``head``: the store must never be found holding less."""

    @abstractmethod
    async def read(self, position: str, *, block: float) -> tuple[str, list[Record | PresenceEntry]]:
        """Entries after ``position`` (waiting up to ``block`` seconds for some), and the new position."""

    @abstractmethod
    async def announce(self, server: str, event: PresenceEvent, client: ClientInfo) -> None:
        """Record a join, leave or rename of one of this server's clients in the stream."""

    @abstractmethod
    async def announce_all(self, server: str, clients: Sequence[ClientInfo]) -> None:
        """Say again who this server's clients are, all of them (after the store lost or rewound its list)."""

    @abstractmethod
    async def beat(self, server: str, ttl: float) -> Beat:
        """Say this server is alive for ``ttl`` more seconds, reap servers whose time ran out, check the ledger."""

    @abstractmethod
    async def retire(self, server: str) -> None:
        """This server stops: take it off the list of live servers at once."""

    # -- repairing a rewound ledger --------------------------------------------------------

    @abstractmethod
    async def report_rewound(self, server: str, reason: str, found: int) -> RewoundMark:
        """Mark the ledger rewound (unless it is already); the mark now in place."""

    @abstractmethod
    async def rewound(self) -> RewoundMark | None:
        """The rewound mark, if the ledger carries one."""

    @abstractmethod
    async def claim(self, server: str, claim: Claim) -> None:
        """Post what this server saw, for the repair."""

    @abstractmethod
    async def claims(self) -> dict[str, Claim]:
        """Every claim posted for the repair under way, by server."""

    @abstractmethod
    async def head_now(self) -> tuple[str, int, Head] | None:
        """The ledger, epoch and head the store holds now (None: no ledger)."""

    @abstractmethod
    async def lead_repair(self, server: str, lease: float) -> bool:
        """Take (or keep) the lead of the repair for ``lease`` seconds; True if this server leads it."""

    @abstractmethod
    async def carry_on(self, mark: RewoundMark, base: Claim, key: str, epoch: int) -> Restore | None:
        """(Leader) Carry the ledger on from ``base`` in ``epoch``, once per round; None if the round is over."""

    @abstractmethod
    async def repair(self) -> Restore | None:
        """The repair of this round (or the last one), if any."""

    @abstractmethod
    async def restore_ops(self, restore: Restore, entries: Sequence[Witnessed], retention: float) -> None:
        """Make the op ids of ``entries`` (at or before the base) known again, so that their resends are dups."""

    @abstractmethod
    async def reapply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        """Apply adds a witness kept, while the ledger is marked rewound (only the repair may)."""

    @abstractmethod
    async def repaired(self, server: str, restore: Restore, readded: int) -> None:
        """This server has restored what its witness held for ``restore`` (``readded`` adds applied again)."""

    @abstractmethod
    async def progress(self, restore: Restore) -> dict[str, int]:
        """The servers that have repaired for ``restore``, with how many adds each applied again."""

    @abstractmethod
    async def finish_repair(self, restore: Restore) -> bool:
        """(Leader) Clear the mark: adds are taken again. False if this round was already over."""


def sample_times(since: float, until: float, points: int) -> list[float]:
    """``points`` evenly spaced times ending at ``until``, the first one at ``since``."""
    if points <= 1 or until <= since:
        return [until]
    step = (until - since) / (points - 1)
    return [since + step * index for index in range(points)]
