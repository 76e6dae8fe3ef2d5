"""Answers to history requests (the chart), off the commit path and shared between askers.

Every dashboard watching the same window asks the same question: an answer is kept
for a moment (``max_age``) and one store read serves everyone asking meanwhile. The
store reads history apart from its writer (SQLite on a reader thread with its own
connection; Redis is asked directly), so that however many people page through
history, adds are committed as fast as ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tally.server.protocol import HistoryPoint
from tally.server.store.base import Store, sample_times
from tally.server.view import LedgerView

__all__ = ["HistoryReader"]

# How long one answer to a history request is reused.
MAX_AGE = 1.0
# Answers kept at most (one per window asked for in the last MAX_AGE).
KEPT = 64


class HistoryReader:
    def __init__(
        self, store: Store, view: LedgerView, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.view = view
        self.max_age = max_age
        self.clock = clock
        self._answers: dict[tuple[int, int], tuple[float, asyncio.Future[list[HistoryPoint]]]] = {}

    async def answer(self, since: float, points: int) -> list[HistoryPoint]:
        """The total from ``since`` until now, in at most ``points`` points, oldest first."""
        now = self.clock()
        key = (round(since), points)
        kept = self._answers.get(key)
        if kept is not None and now - kept[0] < self.max_age:
            return list(await asyncio.shield(kept[1]))
        if len(self._answers) >= KEPT:
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.max_age}
        future = asyncio.ensure_future(self._read(since, now, points))
        self._answers[key] = (now, future)
        try:
            return list(await asyncio.shield(future))
        except Exception:
            self._answers.pop(key, None)  # a failure is not kept
            raise

    async def _read(self, since: float, now: float, points: int) -> list[HistoryPoint]:
        times = sample_times(since, now, points)
        answer = await self.store.history(times)
        began_inside = answer[0].at > times[0] if answer else self.view.seq == 0
        if began_inside and self.view.epoch == 1:
            # Nothing stored before the window: the ledger began inside it, at 0 (in its first
            # epoch, with no history lost). Without that point a chart of the window would
            # start at the first update it samples, and show none of the change before it.
            answer = [HistoryPoint(seq=0, at=times[0], total=0), *answer]
        return answer
