"""The ledger: the one writer in front of the store.

Handlers submit adds; one task takes everything that has queued up, applies
it to the store in one transaction (group commit), and only then publishes
the updates and resolves the submitters' futures. So updates go out in seq
order, nothing is acknowledged before it is stored, and a burst of adds
costs one commit instead of one each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from server.protocol import HISTORY_POINTS, ErrorCode, HistoryPoint
from server.state import AddRequest, Applied, Outcome, Record, Refused, Snapshot
from server.store import Store

__all__ = ["Ledger"]

log = logging.getLogger("tally.server")

# Bounds one transaction, so a flood cannot make a single commit arbitrarily long.
MAX_ADDS_PER_COMMIT = 1000


class Ledger:
    def __init__(self, store: Store, publish: Callable[[Sequence[Record]], None]) -> None:
        self.store = store
        self.publish = publish
        self.total = 0
        self.seq = 0
        self.history: deque[HistoryPoint] = deque(maxlen=HISTORY_POINTS)
        self._queue: list[tuple[AddRequest, asyncio.Future[Outcome]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._stale = False  # after a store failure, reload the snapshot before trusting the cache
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._load(await self.store.open())
        self._writer = asyncio.create_task(self._write_forever(), name="tally-ledger")

    def _load(self, snapshot: Snapshot) -> None:
        self.total, self.seq = snapshot.total, snapshot.seq
        self.history.clear()
        self.history.extend(snapshot.history)

    def submit(self, request: AddRequest) -> asyncio.Future[Outcome]:
        """Queue an add; the future resolves once it is stored (or refused)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_result(Refused(ErrorCode.UNAVAILABLE, "the server is shutting down"))
            return future
        self._queue.append((request, future))
        self._wakeup.set()
        return future

    async def stop(self) -> None:
        """Store everything already submitted, then close the store."""
        self._closing = True
        self._wakeup.set()
        if self._writer is not None:
            await self._writer
        await self.store.close()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_ADDS_PER_COMMIT], self._queue[MAX_ADDS_PER_COMMIT:]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[AddRequest, asyncio.Future[Outcome]]]) -> None:
        try:
            if self._stale:
                self._load(await self.store.snapshot())
                log.warning("store available again (total=%d, seq=%d)", self.total, self.seq)
                self._stale = False
            outcomes = await self.store.apply([request for request, _ in batch], at=time.time())
        except Exception as exc:
            # A failed commit may still have reached the disk; the snapshot decides.
            self._stale = True
            log.error("store failed (%s); refusing %d add(s)", exc, len(batch))
            refusal = Refused(ErrorCode.UNAVAILABLE, "the store is unavailable; nothing was added, try again")
            outcomes = [refusal] * len(batch)
        records = [outcome.record for outcome in outcomes if isinstance(outcome, Applied)]
        if records:
            self.total, self.seq = records[-1].total, records[-1].seq
            self.history.extend(record.point() for record in records)
            self.publish(records)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
