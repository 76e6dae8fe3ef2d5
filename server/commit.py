"""How a batch of adds is committed, chosen once at start: a store only this server writes, or a shared one.

:class:`LocalCommit` (SQLite, memory): the store applies the batch in one
transaction; its records are the new head, published at once.

:class:`SharedCommit` (Redis): the store applies the batch for every server at
once; this server writes what it applied to its witness (durably, before any
ack: see :mod:`tally.server.witness`), and acknowledges once the updates have
come back through the stream every server follows (the cluster takes them),
so that an adder never sees its ack before its update.

Either way a refusal for a store fault says what is wrong and that nothing was
added; the dashboard keeps such adds and sends them again when the store is back.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tally.server.protocol import ErrorCode
from tally.server.state import AddRequest, Applied, Outcome, Refused, Witnessed
from tally.server.store.base import SharedStore, Store, StoreRewound
from tally.server.view import RECENT_KEPT
from tally.server.witness import Witness

if TYPE_CHECKING:
    from tally.server.ledger import Ledger

__all__ = ["Commit", "LocalCommit", "SharedCommit", "not_stored"]

log = logging.getLogger("tally.server")

# With a shared store, how long an applied add may wait to be read back from the stream
# before its adder is told to resend (which the dedupe answers with the original ack).
PUBLISH_TIMEOUT = 5.0


def not_stored(reason: str, count: int) -> list[Outcome]:
    return [Refused(ErrorCode.UNAVAILABLE, f"not stored: {reason}; nothing was added")] * count


class Commit(ABC):
    @abstractmethod
    async def open(self, ledger: Ledger) -> None:
        """Load the ledger (a shared store is loaded by the cluster, with who is online)."""

    @abstractmethod
    async def commit(self, ledger: Ledger, requests: Sequence[AddRequest], at: float) -> list[Outcome]:
        """Store ``requests`` in one go; one outcome each. Applied records are taken by the ledger when published."""

    async def probe(self, ledger: Ledger, at: float) -> None:
        """After a failed commit, with no adds to try: an empty one, so that the store is known to be back."""
        await self.commit(ledger, [], at)

    @abstractmethod
    async def prune(self, before: float) -> None:
        """Forget what is older than the retention window."""

    @abstractmethod
    async def close(self) -> None: ...


class LocalCommit(Commit):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._stale = False  # after a failure, reload the snapshot before trusting the view

    async def open(self, ledger: Ledger) -> None:
        ledger.view.load(await self.store.open(recent=RECENT_KEPT))

    async def commit(self, ledger: Ledger, requests: Sequence[AddRequest], at: float) -> list[Outcome]:
        try:
            if self._stale:
                ledger.view.load(await self.store.open(recent=RECENT_KEPT))
                self._stale = False
            outcomes = await self.store.apply(requests, at=at)
        except Exception as exc:
            # A failed commit may still have reached the disk; the snapshot decides.
            self._stale = True
            reason = str(exc) or type(exc).__name__
            ledger.health.failed(reason, "commit")
            return not_stored(reason, len(requests))
        ledger.health.ok("commit")
        records = [outcome.record for outcome in outcomes if isinstance(outcome, Applied)]
        if records:
            ledger.take(records)
        return outcomes

    async def prune(self, before: float) -> None:
        await self.store.prune(before)

    async def close(self) -> None:
        await self.store.close()


class SharedCommit(Commit):
    def __init__(
        self, store: SharedStore, witness: Witness, *, place: str, publish_timeout: float = PUBLISH_TIMEOUT
    ) -> None:
        """``place`` names the store for the witness (URL and prefix)."""
        self.store = store
        self.witness = witness
        self.place = place
        self.publish_timeout = publish_timeout

    async def open(self, ledger: Ledger) -> None:
        pass

    async def commit(self, ledger: Ledger, requests: Sequence[AddRequest], at: float) -> list[Outcome]:
        health = ledger.health
        if health.state == "rewound":  # the store refuses too; this spares it the round trip
            return not_stored(health.reason, len(requests))
        view = ledger.view
        epoch = view.epoch
        try:
            outcomes = await self.store.apply(requests, at=at)
        except StoreRewound as exc:
            health.rewound(str(exc))
            return not_stored(str(exc), len(requests))
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            health.failed(reason, "commit")
            return not_stored(reason, len(requests))
        health.ok("commit")
        applied = [
            Witnessed(epoch, outcome.record, request.undo)
            for request, outcome in zip(requests, outcomes, strict=True)
            if isinstance(outcome, Applied)
        ]
        if not applied:
            return outcomes
        try:
            await self.witness.record(view.id, view.key, self.place, applied)
        except Exception as exc:
            # Stored in Redis, but this server could not keep its own record of it: no ack. The adders
            # resend, and the dedupe answers with the ack once the witness works again.
            log.error("could not write the witness log %s (%s)", self.witness.path, exc, extra={"event": "store"})
            return not_stored(f"this server could not write its witness log ({exc})", len(requests))
        if not await ledger.read_back(applied[-1].record.seq, self.publish_timeout):
            # Stored, but not seen back: the adder resends, and the dedupe answers with the ack.
            late = Refused(ErrorCode.UNAVAILABLE, "stored, but not yet confirmed; resend the same op")
            return [late if isinstance(outcome, Applied) else outcome for outcome in outcomes]
        return outcomes

    async def prune(self, before: float) -> None:
        await self.store.prune(before)
        await self.witness.trim(before)

    async def close(self) -> None:
        await self.store.close()
        await self.witness.close()
