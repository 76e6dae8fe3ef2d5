"""The ledger's one writer: every add goes through one queue, and a batch is committed at a time.

Handlers submit adds; one task takes everything that has queued up and hands it to
the commit strategy chosen at start (:mod:`tally.server.commit`: a store only this
server writes, or a shared one), which stores it in one transaction (group commit)
and publishes the updates; only then is each submitter's reply called with its
add's outcome (a call, not a future: no task or callback is scheduled per add). So
updates go out in seq order, nothing is acknowledged before it is stored, and a
burst of adds costs one commit instead of one each.

The writer owns the :class:`~tally.server.view.LedgerView` (what this server knows
of the ledger now): only it, and the cluster's follower through :meth:`Ledger.take`,
change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from tally.server.commit import Commit
from tally.server.health import StoreHealth
from tally.server.monitoring import Metrics
from tally.server.protocol import ErrorCode
from tally.server.state import AddRequest, Applied, Duplicate, Outcome, Record, Refused
from tally.server.tasks import stop_if_cancelled
from tally.server.view import LedgerView

__all__ = ["MAX_ADDS_PER_COMMIT", "Ledger", "Reply"]

log = logging.getLogger("tally.server")

# Bounds one transaction, so a flood cannot make a single commit arbitrarily long.
MAX_ADDS_PER_COMMIT = 1000
# How often op ids past the retention window are forgotten.
PRUNE_INTERVAL = 600.0
# After a failed commit, how often the store is tried again with nothing in it, to know when it is back.
PROBE_INTERVAL = 1.0
# With a shared store, how long an applied add may wait to be read back from the stream
# before its adder is told to resend (which the dedupe answers with the original ack).
READ_BACK_TIMEOUT = 5.0

# Called with an add and its outcome, once the outcome is known (after its update was published).
Reply = Callable[[AddRequest, Outcome], None]
Waiting = tuple[AddRequest, Reply, float]


class Ledger:
    def __init__(
        self,
        commit: Commit,
        publish: Callable[[Sequence[Record]], None],
        health: StoreHealth,
        *,
        view: LedgerView | None = None,
        retention: float = 86_400.0,
        max_batch: int = MAX_ADDS_PER_COMMIT,
        probe_interval: float = PROBE_INTERVAL,
        read_back_timeout: float = READ_BACK_TIMEOUT,
        metrics: Metrics | None = None,
    ) -> None:
        """``publish`` sends records out (in order, once each); ``max_batch`` bounds one commit; after a failed
        commit the store is tried again every ``probe_interval`` seconds while no add comes to try it."""
        self.commit = commit
        self.publish = publish
        self.health = health
        self.view = view or LedgerView()
        self.retention = retention
        self.max_batch = max_batch
        self.probe_interval = probe_interval
        self.read_back_timeout = read_back_timeout
        self.metrics = metrics
        self._queue: list[Waiting] = []
        self._wakeup = asyncio.Event()
        self._advanced = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def total(self) -> int:
        return self.view.total

    @property
    def seq(self) -> int:
        return self.view.seq

    async def start(self) -> None:
        await self.commit.open(self.view)
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="tally-ledger"),
            asyncio.create_task(self._prune_forever(), name="tally-prune"),
        ]

    def take(self, records: Sequence[Record]) -> None:
        """Records applied after the head, in order: the view moves on and they are published."""
        self.view.take(records)
        self.publish(records)
        self._advanced.set()

    async def read_back(self, seq: int, timeout: float) -> bool:  # noqa: ASYNC109 (one deadline over many waits)
        """Wait until update ``seq`` has been taken (a shared store's stream); False if not within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.seq < seq and self.health.available:
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), max(0.0, deadline - loop.time()))
            if loop.time() >= deadline:
                break
        return self.seq >= seq

    def wake_readers(self) -> None:
        """The store's state changed: whoever waits to read an update back looks again."""
        self._advanced.set()

    def submit(self, request: AddRequest, reply: Reply) -> None:
        """Queue an add; ``reply(request, outcome)`` is called once it is stored (or refused), after its
        update was published, so that whatever the reply sends goes out after the update."""
        if self._closing:
            reply(request, Refused(ErrorCode.UNAVAILABLE, "the server is shutting down"))
            return
        self._queue.append((request, reply, time.monotonic()))
        self._wakeup.set()

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
        await self.commit.close()

    async def _write_forever(self) -> None:
        while True:
            if self.health.failing("commit") and not self._closing:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.probe_interval)
                except TimeoutError:
                    await self.commit.probe(time.time(), self.view, self.health)
                    continue
            else:
                await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[Waiting]) -> None:
        started = time.monotonic()
        committed = await self.commit.commit([request for request, _, _ in batch], time.time(), self.view, self.health)
        outcomes = committed.outcomes
        if committed.take:
            self.take(committed.take)
        if committed.read_back is not None and not await self.read_back(committed.read_back, self.read_back_timeout):
            # Stored, but not seen back: the adder resends, and the dedupe answers with the ack.
            late = Refused(ErrorCode.UNAVAILABLE, "stored, but not yet confirmed; resend the same op")
            outcomes = [late if isinstance(outcome, Applied) else outcome for outcome in outcomes]
        self._measure(started, batch, outcomes)
        for (request, reply, _), outcome in zip(batch, outcomes, strict=True):
            try:
                reply(request, outcome)
            except Exception:  # one submitter's bug must not keep the others' answers, or the writer, from going on
                log.exception("answering an add failed")

    def _measure(self, started: float, batch: Sequence[Waiting], outcomes: Sequence[Outcome]) -> None:
        if self.metrics is None:
            return
        now = time.monotonic()
        self.metrics.commit_seconds.observe(now - started)
        self.metrics.batch_size.observe(len(batch))
        applied = 0
        for (_, _, submitted), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Applied):
                applied += 1
                self.metrics.update_seconds.observe(now - submitted)
            elif isinstance(outcome, Duplicate):
                self.metrics.duplicates.inc()
        self.metrics.adds_applied.inc(applied)

    async def _prune_forever(self) -> None:
        # Not `while True`: redis-py can swallow a cancellation that lands mid-command, and
        # this loop would then sleep on and hold stop() (and the process) for ever.
        while not self._closing:
            try:
                await self.commit.prune(time.time() - self.retention)
            except Exception as exc:
                stop_if_cancelled(exc)
                log.error("could not forget old op ids (%s); will try again", exc)
            if not self._closing:
                await asyncio.sleep(PRUNE_INTERVAL)
