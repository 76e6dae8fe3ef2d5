"""The adds typed and not yet acknowledged: the dashboard's one record of them.

Each add gets its op id here when typed and stays until the server
acknowledges it (or refuses it for a reason that resending will not change).
The connection resends whatever is here after every reconnect, with the same
op ids, so the server's dedupe makes each count exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Pending", "PendingAdd"]


@dataclass(frozen=True, slots=True)
class PendingAdd:
    op: str
    amount: int
    typed_at: float  # Unix time


class Pending:
    """Pending adds in the order typed, keyed by op id."""

    def __init__(self) -> None:
        self._adds: dict[str, PendingAdd] = {}
        self._op_ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._adds)

    def __iter__(self) -> Iterator[PendingAdd]:
        return iter(list(self._adds.values()))

    def __contains__(self, op: object) -> bool:
        return op in self._adds

    def get(self, op: str) -> PendingAdd | None:
        return self._adds.get(op)

    def add(self, amount: int, *, at: float) -> PendingAdd:
        """Record a newly typed add under a fresh op id."""
        pending = PendingAdd(str(next(self._op_ids)), amount, at)
        self._adds[pending.op] = pending
        return pending

    def restore(self, pending: PendingAdd) -> None:
        """Put back an add whose outcome is unknown again (its ack was lost)."""
        self._adds[pending.op] = pending

    def settle(self, op: str) -> PendingAdd | None:
        """Forget ``op``: acknowledged, or refused for good. None if it was not pending."""
        return self._adds.pop(op, None)

    @property
    def amount(self) -> int:
        """What the pending adds will add together (for a projected total)."""
        return sum(add.amount for add in self._adds.values())
