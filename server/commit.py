"""How a batch of adds is committed, chosen once at start: a store only this server writes, or a shared one.

:class:`LocalCommit` (SQLite, memory): the store applies the batch in one
transaction; its records are the new head, for the ledger to take and publish at once.

:class:`SharedCommit` (Redis): the store applies the batch for every server at
once; this server writes what it applied to its witness (durably, before any
ack: see :mod:`tally.server.witness`), and the ledger acknowledges once the updates
have come back through the stream every server follows (the cluster takes them),
so that an adder never sees its ack before its update.

Either way a refusal for a store fault says what is wrong and that nothing was
added; the dashboard keeps such adds and sends them again when the store is back.
A strategy reports what it finds to the store's health, under the name "commit".
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from tally.server.health import StoreHealth
from tally.server.protocol import ErrorCode
from tally.server.state import AddRequest, Applied, Outcome, Record, Refused, Witnessed
from tally.server.store.base import SharedStore, Store, StoreRewound
from tally.server.view import RECENT_KEPT, LedgerView
from tally.server.witness import Witness

__all__ = ["Commit", "Committed", "LocalCommit", "SharedCommit", "not_stored"]

log = logging.getLogger("tally.server")


def not_stored(reason: str, count: int) -> list[Outcome]:
    return [Refused(ErrorCode.UNAVAILABLE, f"not stored: {reason}; nothing was added")] * count


@dataclass(frozen=True, slots=True)
class Committed:
    """One outcome per add; the records for the ledger to take now (a local store), or the seq to wait for
    in the shared stream before acknowledging (a shared one)."""

    outcomes: list[Outcome]
    take: list[Record] = field(default_factory=list)
    read_back: int | None = None


class Commit(ABC):
    @abstractmethod
    async def open(self, view: LedgerView) -> None:
        """Load the ledger into ``view`` (a shared store is loaded by the cluster, with who is online)."""

    @abstractmethod
    async def commit(
        self, requests: Sequence[AddRequest], at: float, view: LedgerView, health: StoreHealth
    ) -> Committed:
        """Store ``requests`` in one go."""

    async def probe(self, at: float, view: LedgerView, health: StoreHealth) -> None:
        """After a failed commit, with no adds to try: an empty one, so that the store is known to be back."""
        await self.commit([], at, view, health)

    @abstractmethod
    async def prune(self, before: float) -> None:
        """Forget what is older than the retention window."""

    @abstractmethod
    async def close(self) -> None: ...


class LocalCommit(Commit):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._stale = False  # after a failure, reload the snapshot before trusting the view

    async def open(self, view: LedgerView) -> None:
        view.load(await self.store.open(recent=RECENT_KEPT))

    async def commit(
        self, requests: Sequence[AddRequest], at: float, view: LedgerView, health: StoreHealth
    ) -> Committed:
        if health.state == "rewound":
            # Found by a dashboard's sealed claim: the file is older than what was acknowledged. Only an operator
            # can say what is right (restore the right file, or restart with --accept-ledger-loss).
            return Committed(not_stored(health.reason, len(requests)))
        try:
            if self._stale:
                view.load(await self.store.open(recent=RECENT_KEPT))
                self._stale = False
            outcomes = await self.store.apply(requests, at=at)
        except Exception as exc:
            # A failed commit may still have reached the disk; the snapshot decides.
            self._stale = True
            reason = str(exc) or type(exc).__name__
            health.failed(reason, "commit")
            return Committed(not_stored(reason, len(requests)))
        health.ok("commit")
        return Committed(outcomes, take=[outcome.record for outcome in outcomes if isinstance(outcome, Applied)])

    async def prune(self, before: float) -> None:
        await self.store.prune(before)

    async def close(self) -> None:
        await self.store.close()


class SharedCommit(Commit):
    def __init__(self, store: SharedStore, witness: Witness, *, place: str) -> None:
        """``place`` names the store for the witness (URL and prefix)."""
        self.store = store
        self.witness = witness
        self.place = place

    async def open(self, view: LedgerView) -> None:
        pass

    async def commit(
        self, requests: Sequence[AddRequest], at: float, view: LedgerView, health: StoreHealth
    ) -> Committed:
        if health.state == "rewound":  # the store refuses too; this spares it the round trip
            return Committed(not_stored(health.reason, len(requests)))
        epoch = view.epoch
        try:
            outcomes = await self.store.apply(requests, at=at)
        except StoreRewound as exc:
            health.rewound(str(exc))
            return Committed(not_stored(str(exc), len(requests)))
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            health.failed(reason, "commit")
            return Committed(not_stored(reason, len(requests)))
        health.ok("commit")
        applied = [
            Witnessed(epoch, outcome.record, request.undo)
            for request, outcome in zip(requests, outcomes, strict=True)
            if isinstance(outcome, Applied)
        ]
        if not applied:
            return Committed(outcomes)
        try:
            await self.witness.record(view.id, view.key, self.place, applied)
        except Exception as exc:
            # Stored in Redis, but this server could not keep its own record of it: no ack. The adders
            # resend, and the dedupe answers with the ack once the witness works again.
            log.error("could not write the witness log %s (%s)", self.witness.path, exc, extra={"event": "store"})
            return Committed(not_stored(f"this server could not write its witness log ({exc})", len(requests)))
        return Committed(outcomes, read_back=applied[-1].record.seq)

    async def prune(self, before: float) -> None:
        await self.store.prune(before)
        await self.witness.trim(before)

    async def close(self) -> None:
        await self.store.close()
        await self.witness.close()
