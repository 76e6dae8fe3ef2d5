"""A store that keeps everything in memory: for tests and ``--db :memory:``."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from server.protocol import HISTORY_POINTS
from server.state import AddRequest, Head, OpKey, Outcome, Record, Snapshot, apply_batch
from server.store.base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self) -> None:
        self.head = Head()
        self.ops: dict[OpKey, int] = {}
        self.recent: deque[Record] = deque(maxlen=HISTORY_POINTS)

    async def open(self) -> Snapshot:
        return await self.snapshot()

    async def snapshot(self) -> Snapshot:
        return Snapshot(self.head.total, self.head.seq, tuple(r.point() for r in self.recent))

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        result = apply_batch(self.head, batch, at=at, applied_before=self.ops.get)
        self.head = result.head
        self.recent.extend(result.records)
        for record in result.records:
            if record.op is not None:
                self.ops[record.session, record.op] = record.seq
        return result.outcomes

    async def close(self) -> None:
        pass
