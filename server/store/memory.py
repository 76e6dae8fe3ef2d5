"""A store that keeps everything in memory: for tests and ``--db :memory:``."""

from __future__ import annotations

import bisect
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace

from tally.server.protocol import HistoryPoint
from tally.server.state import (
    AddRequest,
    Head,
    OpKey,
    OpRecord,
    Outcome,
    Record,
    Snapshot,
    apply_batch,
    saturating_add,
    thin_to_minutes,
)
from tally.server.store.base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self) -> None:
        self.ledger = uuid.uuid4().hex[:16]
        self.key = secrets.token_hex(16)
        self.head = Head(digest=self.ledger)
        self.records: list[Record] = []  # oldest first; pruned to one a minute past retention
        self.ops: dict[OpKey, OpRecord] = {}
        self.contributions: dict[str, int] = {}
        self.epoch = 1

    async def start_epoch(self) -> int:
        self.epoch += 1
        return self.epoch

    async def open(self, *, recent: int) -> Snapshot:
        records = tuple(self.records[-recent:]) if recent else ()
        return Snapshot(self.ledger, self.epoch, self.head, records, dict(self.contributions), self.key)

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
        for key, by in result.undone:
            if key in self.ops:
                self.ops[key] = replace(self.ops[key], undone_by=by)
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
        old = [record for record in self.records if record.at < before]
        keep = thin_to_minutes((record.seq, record.at) for record in old) | {self.head.seq}
        for record in old:
            if record.op is not None:
                self.ops.pop((record.session, record.op), None)
        self.records = [record for record in self.records if record.at >= before or record.seq in keep]

    async def close(self) -> None:
        pass
