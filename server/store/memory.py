"""A store that keeps everything in memory: for tests and ``--db :memory:``."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from server.state import AddRequest, Applied, Duplicate, Outcome, Record, Refused, Snapshot, next_total
from server.store.base import HISTORY_POINTS, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self) -> None:
        self.total = 0
        self.seq = 0
        self.ops: dict[tuple[str | None, str], int] = {}
        self.recent: deque[Record] = deque(maxlen=HISTORY_POINTS)

    async def open(self) -> Snapshot:
        return await self.snapshot()

    async def snapshot(self) -> Snapshot:
        return Snapshot(self.total, self.seq, tuple(r.point() for r in self.recent))

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for request in batch:
            key = (request.session, request.op) if request.op is not None else None
            if key is not None and key in self.ops:
                outcomes.append(Duplicate(self.ops[key]))
                continue
            total = next_total(self.total, request.amount)
            if isinstance(total, Refused):
                outcomes.append(total)
                continue
            self.seq += 1
            self.total = total
            record = Record(
                self.seq, at, request.amount, total, request.name, request.client, request.session, request.op
            )
            self.recent.append(record)
            if key is not None:
                self.ops[key] = self.seq
            outcomes.append(Applied(record))
        return outcomes

    async def close(self) -> None:
        pass
