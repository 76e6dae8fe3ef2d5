"""The limits' pure parts: the token bucket, and the rule that a name starts with something visible."""

from __future__ import annotations

import pytest

from tally.server.limits import TokenBucket
from tally.server.protocol import ProtocolError, check_name


def test_a_token_bucket_allows_bursts_then_the_rate() -> None:
    """A full bucket spends its capacity at once, then refills at the rate."""
    now = [0.0]
    bucket = TokenBucket(rate=10, capacity=5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 100
    assert bucket.tokens <= 5 and bucket.take(5) and not bucket.take()


@pytest.mark.parametrize("name", ["\u0301abc", "\u0301", "\u20dd\u20dd"])
def test_names_must_start_with_something_visible(name: str) -> None:
    """A leading combining mark would draw on top of whatever precedes it."""
    with pytest.raises(ProtocolError):
        check_name(name)
