"""Limits that keep one client from hurting the others, and the bucket that enforces rates.

Every default here is documented in the README's Guarantees section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Flooding", "Limits", "Pace", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    # Frames larger than this close the connection with 1009.
    max_message_bytes: int = 4096
    # Each add is at most this far from zero (the total itself is 64-bit).
    max_amount: int = 1_000_000_000_000
    # Messages per second per connection, sustained, and the burst allowed above it.
    rate: float = 50.0
    burst: int = 100
    # A connection refused this many times for its rate (one refusal forgiven per
    # second) is flooding and is closed with 1008.
    flood_strikes: int = 50
    # Handshakes beyond this many open connections are refused with HTTP 503.
    max_connections: int = 10_000
    # A connection whose unsent data passes this is not reading: it is dropped.
    max_write_buffer: int = 256 * 1024


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``; ``take`` spends one if it can."""

    def __init__(self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = capacity
        self.updated = clock()

    def take(self, cost: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Flooding(Exception):
    """A connection kept sending past its rate after being told to slow down."""


class Pace:
    """One connection's message budget: a token bucket, and strikes for ignoring it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bucket = TokenBucket(limits.rate, limits.burst)
        self.strikes = TokenBucket(1.0, limits.flood_strikes)

    def allow(self, cost: float = 1.0) -> bool:
        """True if the message may be served; raises Flooding once refusals pile up."""
        if self.bucket.take(cost):
            return True
        if not self.strikes.take():
            raise Flooding
        return False

    @property
    def refusal(self) -> str:
        return f"too many messages: at most {self.limits.rate:g} a second (bursts of {self.limits.burst})"
