"""The ledger: the one writer in front of the store, and the server's view of its head.

Handlers submit adds; one task takes everything that has queued up, applies
it to the store in one transaction (group commit), and only then publishes
the updates and resolves the submitters' futures. So updates go out in seq
order, nothing is acknowledged before it is stored, and a burst of adds
costs one commit instead of one each.

The ledger also keeps what a welcome needs without asking the store: the
head, the most recent records (for the activity log and for replaying what
a reconnecting dashboard missed), and what each session has added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tally.server.protocol import ErrorCode, HistoryPoint
from tally.server.state import AddRequest, Applied, Duplicate, Head, Outcome, Record, Refused, Snapshot, saturating_add
from tally.server.store import Store

if TYPE_CHECKING:
    from tally.server.monitoring import Metrics
from tally.server.store.base import sample_times
from tally.server.tasks import stop_if_cancelled

__all__ = ["MAX_ADDS_PER_COMMIT", "RECENT_KEPT", "Ledger"]

log = logging.getLogger("tally.server")

# Bounds one transaction, so a flood cannot make a single commit arbitrarily long.
MAX_ADDS_PER_COMMIT = 1000
# Records kept in memory: a dashboard that missed no more than this many is sent just those.
RECENT_KEPT = 1000
# How often op ids past the retention window are forgotten.
PRUNE_INTERVAL = 600.0
# How long one answer to a history request is reused.
HISTORY_CACHE_SECONDS = 1.0
# With a shared store, how long an applied add may wait to be read back from the stream
# before its adder is told to resend (which the dedupe answers with the original ack).
PUBLISH_TIMEOUT = 5.0


class Ledger:
    def __init__(
        self,
        store: Store,
        publish: Callable[[Sequence[Record]], None],
        *,
        retention: float = 86_400.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.publish = publish
        self.retention = retention
        self.id = ""
        self.epoch = 0
        self.head = Head()
        self.recent: deque[Record] = deque(maxlen=RECENT_KEPT)
        self.contributions: dict[str, int] = {}
        # Each add with its future and when it was submitted (for the update latency).
        self._queue: list[tuple[AddRequest, asyncio.Future[Outcome], float]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._stale = False  # after a store failure, reload the snapshot before trusting the cache
        self._tasks: list[asyncio.Task[None]] = []
        # A shared store (Redis) publishes through the stream every server follows
        # (server/cluster.py); adds are acknowledged once read back from it.
        self.shared = bool(getattr(store, "shared", False))
        self._lost = ""
        self._seen = asyncio.Event()
        self._history: dict[tuple[int, int], tuple[float, list[HistoryPoint]]] = {}

    @property
    def total(self) -> int:
        return self.head.total

    @property
    def seq(self) -> int:
        return self.head.seq

    @property
    def available(self) -> bool:
        """False after a store failure, until a commit succeeds again."""
        return not (self._stale or self._lost)

    async def start(self) -> None:
        if not self.shared:  # a cluster loads the shared ledger itself, with who is online
            self._load(await self.store.open(recent=RECENT_KEPT))
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="tally-ledger"),
            asyncio.create_task(self._prune_forever(), name="tally-prune"),
        ]

    def reload(self, snapshot: Snapshot) -> None:
        """Take ``snapshot`` as the truth (a shared store, after a gap or an outage)."""
        self._load(snapshot)
        self._lost = ""

    def lost(self, why: str) -> None:
        """The shared store cannot be served now: refuse adds until ``reload``."""
        self._lost = why
        self._seen.set()

    def published(self, records: Sequence[Record]) -> None:
        """Records read back from a shared store's stream, in order: take them and publish them."""
        self._take(records)
        self.publish(records)
        saw = getattr(self.store, "saw", None)
        if saw is not None:
            saw(self.seq)
        self._seen.set()

    async def _read_back(self, seq: int) -> bool:
        """Wait until update ``seq`` has been published (a shared store); False if it was not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_TIMEOUT
        while self.seq < seq and not self._lost:
            self._seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), max(0.0, deadline - loop.time()))
            if loop.time() >= deadline:
                break
        return self.seq >= seq

    def _load(self, snapshot: Snapshot) -> None:
        self.id, self.epoch, self.head = snapshot.ledger, snapshot.epoch, snapshot.head
        self.recent.clear()
        self.recent.extend(snapshot.recent)
        self.contributions = snapshot.contributions

    def submit(self, request: AddRequest) -> asyncio.Future[Outcome]:
        """Queue an add; the future resolves once it is stored (or refused)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_result(Refused(ErrorCode.UNAVAILABLE, "the server is shutting down"))
            return future
        self._queue.append((request, future, time.monotonic()))
        self._wakeup.set()
        return future

    def contribution(self, session: str | None) -> int:
        return 0 if session is None else self.contributions.get(session, 0)

    def missed(self, after: int) -> tuple[Record, ...] | None:
        """Every record after seq ``after``, or None if they are no longer all in memory."""
        if after > self.seq:
            return None
        if after == self.seq:
            return ()
        if not self.recent or self.recent[0].seq > after + 1:
            return None
        return tuple(record for record in self.recent if record.seq > after)

    def points(self, count: int) -> tuple[HistoryPoint, ...]:
        """The last ``count`` points of the total, oldest first."""
        start = max(0, len(self.recent) - count)
        return tuple(self.recent[index].point() for index in range(start, len(self.recent)))

    async def history(self, since: float, points: int) -> list[HistoryPoint]:
        """The total from ``since`` until now, in at most ``points`` points.

        Answers are kept for a second: every dashboard watching the same window asks
        the same question, and the store is asked once.
        """
        now = time.time()
        key = (round(since), points)
        cached = self._history.get(key)
        if cached is not None and now - cached[0] < HISTORY_CACHE_SECONDS:
            return cached[1]
        times = sample_times(since, now, points)
        answer = await self.store.history(times)
        began_inside = answer[0].at > times[0] if answer else self.seq == 0
        if began_inside and self.epoch == 1:
            # Nothing stored before the window: the ledger began inside it, at 0 (in its first
            # epoch, with no history lost). Without that point a chart of the window would
            # start at the first update it samples, and show none of the change before it.
            answer = [HistoryPoint(seq=0, at=times[0], total=0), *answer]
        if len(self._history) > 64:
            self._history.clear()
        self._history[key] = (now, answer)
        return answer

    async def stop(self) -> None:
        """Store everything already submitted, then close the store."""
        self._closing = True
        self._wakeup.set()
        if self._tasks:
            writer, *others = self._tasks
            for task in others:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*others)
            await writer
        await self.store.close()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[:MAX_ADDS_PER_COMMIT]
                self._queue = self._queue[MAX_ADDS_PER_COMMIT:]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[AddRequest, asyncio.Future[Outcome], float]]) -> None:
        if self.shared:
            await self._commit_shared(batch)
            return
        started = time.monotonic()
        try:
            if self._stale:
                self._load(await self.store.open(recent=RECENT_KEPT))
                log.warning("store available again (total=%d, seq=%d)", self.total, self.seq)
                self._stale = False
            outcomes = await self.store.apply([request for request, _, _ in batch], at=time.time())
        except Exception as exc:
            # A failed commit may still have reached the disk; the snapshot decides.
            self._stale = True
            log.error("store failed (%s); refusing %d add(s)", exc, len(batch), extra={"event": "store"})
            refusal = Refused(ErrorCode.UNAVAILABLE, "the store is unavailable; nothing was added, try again")
            outcomes = [refusal] * len(batch)
        self._measure_commit(started, batch, outcomes)
        records = [outcome.record for outcome in outcomes if isinstance(outcome, Applied)]
        if records:
            self._take(records)
            self.publish(records)
        self._measure_published(batch, outcomes)
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    def _measure_commit(self, started: float, batch: Sequence[object], outcomes: Sequence[Outcome]) -> None:
        if self.metrics is not None:
            self.metrics.commit_seconds.observe(time.monotonic() - started)
            self.metrics.batch_size.observe(len(batch))
            self.metrics.duplicates.inc(sum(isinstance(outcome, Duplicate) for outcome in outcomes))

    def _measure_published(
        self, batch: Sequence[tuple[AddRequest, asyncio.Future[Outcome], float]], outcomes: Sequence[Outcome]
    ) -> None:
        if self.metrics is None:
            return
        now = time.monotonic()
        applied = 0
        for (_, _, submitted), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Applied):
                applied += 1
                self.metrics.update_seconds.observe(now - submitted)
        self.metrics.adds_applied.inc(applied)

    async def _commit_shared(self, batch: list[tuple[AddRequest, asyncio.Future[Outcome], float]]) -> None:
        unavailable = Refused(ErrorCode.UNAVAILABLE, "the shared store is unavailable; nothing was added, try again")
        outcomes: list[Outcome]
        if self._lost:
            outcomes = [unavailable] * len(batch)
        else:
            started = time.monotonic()
            try:
                outcomes = await self.store.apply([request for request, _, _ in batch], at=time.time())
            except Exception as exc:
                log.error("store failed (%s); refusing %d add(s)", exc, len(batch), extra={"event": "store"})
                outcomes = [unavailable] * len(batch)
            self._measure_commit(started, batch, outcomes)
        applied = [outcome.record.seq for outcome in outcomes if isinstance(outcome, Applied)]
        if applied and not await self._read_back(max(applied)):
            # Stored, but not seen back: the adder resends, and the dedupe answers with the ack.
            late = Refused(ErrorCode.UNAVAILABLE, "stored, but not yet confirmed; resend the same op")
            outcomes = [late if isinstance(outcome, Applied) else outcome for outcome in outcomes]
        self._measure_published(batch, outcomes)
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    def _take(self, records: Sequence[Record]) -> None:
        last = records[-1]
        self.head = Head(last.total, last.seq)
        self.recent.extend(records)
        for record in records:
            if record.session is not None:
                self.contributions[record.session] = saturating_add(
                    self.contributions.get(record.session, 0), record.amount
                )

    async def _prune_forever(self) -> None:
        # Not `while True`: redis-py can swallow a cancellation that lands mid-command, and
        # this loop would then sleep on and hold stop() (and the process) for ever.
        while not self._closing:
            try:
                await self.store.prune(time.time() - self.retention)
            except Exception as exc:
                stop_if_cancelled(exc)
                log.error("could not forget old op ids (%s); will try again", exc)
            if not self._closing:
                await asyncio.sleep(PRUNE_INTERVAL)
