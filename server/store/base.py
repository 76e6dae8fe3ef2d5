"""The interface every store implements: load and save, never the rule itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from tally.server.protocol import HistoryPoint
from tally.server.state import AddRequest, Outcome, Snapshot

__all__ = ["LedgerLost", "Store", "sample_times"]


class LedgerLost(Exception):
    """The stored ledger is damaged, went backwards or vanished: refusing to serve it as if nothing happened.

    The message is one line for the operator, saying what was found and how
    to carry on anyway.
    """


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
    async def open(self, *, recent: int) -> Snapshot:
        """Prepare the store (again, after a failure) and return what it holds, with ``recent`` records."""

    @abstractmethod
    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        """Apply ``batch`` in order with :func:`~server.state.apply_batch`; one outcome per request."""

    @abstractmethod
    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        """The last update at or before each of ``times`` (ascending), without repeats."""

    @abstractmethod
    async def prune(self, before: float) -> None:
        """Forget op ids (and the detail of updates) older than ``before``; keep one point a minute."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources; everything ``apply`` returned is already durable."""


def sample_times(since: float, until: float, points: int) -> list[float]:
    """``points`` evenly spaced times ending at ``until``, the first one at ``since``."""
    if points <= 1 or until <= since:
        return [until]
    step = (until - since) / (points - 1)
    return [since + step * index for index in range(points)]
