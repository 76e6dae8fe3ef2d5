"""Limits that keep one client, or one address, from hurting everyone else; and the bucket that paces them.

Every default here is documented in docs/guarantees.md (Limits). Rates are
enforced by backpressure, not refusals: a connection that is ahead of its
budget is simply not read until the budget refills, so a well-behaved
client (a dashboard resending a queue of adds) is slowed, never refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Limits", "TokenBucket"]


def _limit(default: Any, help: str) -> Any:
    """A limit's default and its one-line meaning (the server's --help is made from these)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = _limit(4096, "largest frame; larger ones close the connection with 1009")
    max_amount: int = _limit(1_000_000_000_000, "largest add, either sign (the total itself is 64-bit)")
    rate: float = _limit(50.0, "frames a second per connection, pings included (past it: not read)")
    burst: int = _limit(100, "frames a connection may send at once above its rate")
    address_rate: float = _limit(200.0, "frames a second from one address, all its connections together")
    address_burst: int = _limit(1000, "frames one address may send at once above its rate")
    max_in_flight: int = _limit(100, "adds per connection waiting for the store (past it: not read)")
    max_connections: int = _limit(10_000, "open connections (clamped to what the open-file limit allows)")
    max_connections_per_address: int = _limit(256, "open connections from one address (HTTP 429 past it)")
    connect_rate: float = _limit(20.0, "new connections a second from one address (HTTP 429 past it)")
    connect_burst: int = _limit(100, "new connections one address may open at once above its rate")
    auth_failures: int = _limit(10, "wrong tokens from one address before it is refused unread (one forgiven per 6 s)")
    hello_timeout: float = _limit(10.0, "seconds a new connection has to say hello (or send its first number)")
    max_write_buffer: int = _limit(256 * 1024, "bytes unsent to a client before it is dropped as not reading")
    live_presence: int = _limit(300, "people online up to which joins and leaves are sent one by one")
    retention: float = _limit(86_400.0, "seconds op ids are kept for dedupe and undo")


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``.

    ``take`` spends tokens only if there are enough; ``charge`` spends them
    anyway, going into debt, and says how long until the debt is paid off.
    """

    def __init__(self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = capacity
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, cost: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def charge(self, cost: float = 1.0) -> float:
        """Spend ``cost`` even if it is not there; seconds until the bucket is out of debt (0 if it is not)."""
        self._refill()
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def debt(self) -> float:
        """Seconds until the bucket is out of debt (0 if it is not in debt)."""
        self._refill()
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity
