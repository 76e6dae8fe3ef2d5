"""When the dashboard retries and what it says about failures: tui.retry, without a socket or a sleep."""

from __future__ import annotations

import random

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tally.server.protocol import ErrorCode, ProtocolError
from tally.tui.retry import Verdict, backoff, classify, describe_close, describe_failure, describe_status


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Replaces the jitter with its upper bound, recording the range asked for."""
    asked: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", uniform)
    return asked


@pytest.mark.parametrize(
    ("attempt", "step"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 15.0), (7, 15.0), (50, 15.0)]
)
def test_backoff_doubles_from_half_a_second_up_to_the_cap(
    draws: list[tuple[float, float]], attempt: int, step: float
) -> None:
    """Without jitter, attempt n waits 0.5 s x 2^(n-1), at most 15 s."""
    assert backoff(attempt) == step


def test_backoff_jitter_is_between_half_and_all_of_the_step(draws: list[tuple[float, float]]) -> None:
    """The jitter factor is drawn from [0.5, 1.0]: never longer than the step, never under half of it."""
    backoff(3)
    assert draws == [(0.5, 1.0)]


def test_backoff_stays_in_its_range_with_real_jitter() -> None:
    """Drawn for real, every delay of attempt 4 (step 4 s) is within [2, 4] s, and they spread out."""
    delays = [backoff(4) for _ in range(1000)]
    assert all(2.0 <= delay <= 4.0 for delay in delays)
    assert max(delays) - min(delays) > 1.0  # jittered, not one value


def test_backoff_base_and_cap_are_options(draws: list[tuple[float, float]]) -> None:
    """A custom base doubles the same way and stops at a custom cap."""
    assert [backoff(n, base=1.0, cap=3.0) for n in (1, 2, 3, 10)] == [1.0, 2.0, 3.0, 3.0]


def test_backoff_stays_capped_however_long_the_server_is_away(draws: list[tuple[float, float]]) -> None:
    """Attempt 2,000 waits the cap, like attempt 7."""
    assert backoff(2000) == 15.0


@pytest.mark.parametrize(
    ("we_closed_first", "code", "reason", "said"),
    [
        (True, 1011, "boom", "reconnecting as asked"),
        (True, None, "", "reconnecting as asked"),
        (False, 1001, "", "the server went away"),
        (False, 1001, "server stopped", "the server stopped"),
        (False, 1011, "boom", "the server closed the connection (1011: boom)"),
        (False, 1008, "", "the server closed the connection (1008)"),
        (False, None, "", "the connection was lost"),
    ],
)
def test_describe_close_says_why_a_connection_ended(
    we_closed_first: bool, code: int | None, reason: str, said: str
) -> None:
    """Our own close, a server that stopped or went away, another close code (with its reason), or no close at all."""
    assert describe_close(we_closed_first=we_closed_first, code=code, reason=reason) == said


@pytest.mark.parametrize(
    ("status", "retry_after", "verdict"),
    [
        (401, None, Verdict("the server wants a valid token (--token, --token-file or TALLY_TOKEN)", retry=False)),
        (403, None, Verdict("the server refused this client (HTTP 403)", retry=False)),
        (429, "7", Verdict("the server is busy with this address (HTTP 429)", after=7.0)),
        (429, None, Verdict("the server is busy with this address (HTTP 429)", after=5.0)),
        (503, None, Verdict("the server is full or stopping (HTTP 503)")),
        (500, None, Verdict("the server failed (HTTP 500)")),
        (404, None, Verdict("this is not a Tally server: it answered HTTP 404 instead of a WebSocket", retry=False)),
        (200, None, Verdict("this is not a Tally server: it answered HTTP 200 instead of a WebSocket", retry=False)),
    ],
)
def test_describe_status_says_whether_retrying_helps(status: int, retry_after: str | None, verdict: Verdict) -> None:
    """A token or a refusal waits for the user; busy or failing servers are retried (after Retry-After); others are
    not Tally servers at all."""
    assert describe_status(status, retry_after=retry_after) == verdict


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "no server is listening"),
        (FileNotFoundError(2, "No such file"), "no server is listening"),
        (TimeoutError(), "the server did not answer in time"),
        (
            ProtocolError(ErrorCode.BAD_MESSAGE, "not JSON"),
            "the server sent something we do not understand (not JSON)",
        ),
        (OSError("Network is unreachable"), "Network is unreachable"),
        (OSError(), "OSError"),
    ],
    ids=["refused", "no-socket", "timeout", "protocol", "os-error", "no-message"],
)
def test_describe_failure_explains_retryable_errors(exc: BaseException, said: str) -> None:
    """Refused, timed out and garbled get a sentence; anything else its own message, or its type."""
    assert describe_failure(exc) == said


def test_a_close_with_1012_asks_for_a_resync_and_others_do_not() -> None:
    """1012 (the ledger was repaired): reconnect for a fresh snapshot, and say so; 1001 and 1011 are plain losses."""
    for code, resync in ((1012, True), (1001, False), (1011, False)):
        closed = ConnectionClosed(Close(code, "the ledger was repaired and carries on in epoch 2"), None)
        verdict = classify(closed)
        assert verdict.retry and verdict.resync is resync, (code, verdict)
    assert "epoch 2" in classify(ConnectionClosed(Close(1012, "the ledger was repaired and carries on in epoch 2"),
                                                  None)).reason  # fmt: skip
