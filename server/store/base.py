"""The interface every store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from server.state import AddRequest, Outcome, Snapshot

__all__ = ["Store"]


class Store(ABC):
    """Keeps the total, the applied op ids and the history of updates.

    A store loads and saves; the rule for an add is :func:`server.state.apply_batch`,
    which every store calls inside its own transaction.

    ``apply`` is atomic per batch: either every outcome in it is stored, or it
    raises and nothing is. Callers acknowledge nothing until it returns. After
    a failure a store should recover by itself on a later call when its
    resource (disk, lock, server) does.
    """

    @abstractmethod
    async def open(self) -> Snapshot:
        """Prepare the store and return what it holds."""

    @abstractmethod
    async def snapshot(self) -> Snapshot:
        """What the store holds now (after a failure, the truth may differ from what was last applied)."""

    @abstractmethod
    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        """Apply ``batch`` in order, deduplicating op ids per session; one outcome per request."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources; everything ``apply`` returned is already durable."""
