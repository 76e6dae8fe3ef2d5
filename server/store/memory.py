"""A store that keeps everything in memory: for tests and ``--db :memory:``."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Sequence

from tally.server.protocol import HistoryPoint
from tally.server.state import AddRequest, Head, OpKey, OpRecord, Outcome, Record, Snapshot, apply_batch, saturating_add
from tally.server.store.base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self) -> None:
        self.ledger = uuid.uuid4().hex[:16]
        self.head = Head()
        self.records: list[Record] = []  # oldest first; pruned to one a minute past retention
        self.ops: dict[OpKey, OpRecord] = {}
        self.contributions: dict[str, int] = {}

    async def open(self, *, recent: int) -> Snapshot:
        return Snapshot(self.ledger, 1, self.head, tuple(self.records[-recent:]), dict(self.contributions))

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        result = apply_batch(self.head, batch, at=at, applied_before=self.ops.get)
        self.head = result.head
        self.records.extend(result.records)
        for record in result.records:
            if record.op is not None:
                self.ops[record.session, record.op] = record.op_record()
            if record.session is not None:
                self.contributions[record.session] = saturating_add(
                    self.contributions.get(record.session, 0), record.amount
                )
        return result.outcomes

    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        ats = [record.at for record in self.records]
        points: list[HistoryPoint] = []
        for time in times:
            index = bisect.bisect_right(ats, time) - 1
            if index >= 0 and (not points or points[-1].seq != self.records[index].seq):
                points.append(self.records[index].point())
        return points

    async def prune(self, before: float) -> None:
        kept: list[Record] = []
        for record in self.records:
            if record.at >= before:
                kept.append(record)
            elif kept and int(kept[-1].at // 60) == int(record.at // 60):
                kept[-1] = record  # the last of each minute stands for it
            else:
                kept.append(record)
            if record.at < before and record.op is not None:
                self.ops.pop((record.session, record.op), None)
        self.records = kept

    async def close(self) -> None:
        pass
