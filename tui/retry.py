"""When to try again, how fast to send, and what to tell the user: the link's failures, classified.

Pure: no socket, no loop, no clock of its own (the pace is given the time and says how long
to wait), so that the wording and the decisions are tested without a connection.
:func:`classify` maps each failure of a session, ours or websockets', onto a :class:`Verdict`.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI

from tally.server.protocol import ProtocolError

__all__ = [
    "NOT_LISTENING",
    "PACE_SHARE",
    "RESYNC",
    "GiveUp",
    "Pace",
    "Resync",
    "Stalled",
    "Verdict",
    "backoff",
    "classify",
    "describe_close",
    "describe_failure",
    "describe_status",
]

# Of the server's rate, what this dashboard uses when it sends a queue of adds.
PACE_SHARE = 0.8


RESYNC = "missed an update; resynchronising"
# The close code a server sends to make every dashboard reconnect and take a fresh snapshot.
SERVICE_RESTART = 1012
# Why an attempt failed when nothing listens at the address (connection refused, no such socket):
# the script commands give up on it at once when asked to (--fail-fast).
NOT_LISTENING = "no server is listening"


class Resync(Exception):
    """We missed an update (a gap in seq): reconnect for a fresh snapshot."""


class Stalled(Exception):
    """The server stopped answering pings: the path to it is gone, whatever TCP says."""


class GiveUp(Exception):
    """Retrying will not help; wait for the user."""


class Pace:
    """Send no faster than ``rate`` a second after a burst of ``burst``: the server's limits, with room to spare."""

    def __init__(self, rate: float = 40.0, burst: float = 50.0, *, now: float = 0.0) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, now

    def take(self, now: float) -> float:
        """Spend one send at ``now`` (monotonic seconds); returns how long to wait before it goes (0: at once)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        wait = 0.0
        if self.tokens < 1:
            wait = (1 - self.tokens) / self.rate
            self.tokens, self.updated = 1.0, now + wait
        self.tokens -= 1
        return wait


def backoff(attempt: int, *, base: float = 0.5, cap: float = 15.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, …): exponential, capped, jittered.

    Full jitter between half and all of the step spreads dashboards out after a
    server restart instead of having them all knock at once.
    """
    # The exponent is capped first: 2.0 ** 1024 overflows a float after some three hours away.
    step = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return step * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to tell the user, and whether trying again can help."""

    reason: str
    retry: bool = True
    # Wait at least this long before trying again (a server that said when).
    after: float = 0.0
    # The server asked every dashboard to start afresh (close code 1012: the ledger was repaired).
    resync: bool = False


def describe_close(*, we_closed_first: bool, code: int | None, reason: str) -> str:
    """Why a connection ended, from its closing handshake (``code`` is None if none arrived)."""
    if we_closed_first:
        return "reconnecting as asked"
    if code == 1001:
        return "the server stopped" if reason == "server stopped" else "the server went away"
    if code is not None:
        return f"the server closed the connection ({code}{': ' + reason if reason else ''})"
    return "the connection was lost"


def describe_status(status: int, *, retry_after: str | None = None) -> Verdict:
    """What an HTTP answer instead of a WebSocket handshake means."""
    if status == 401:
        return Verdict("the server wants a valid token (--token, --token-file or TALLY_TOKEN)", retry=False)
    if status == 403:
        return Verdict("the server refused this client (HTTP 403)", retry=False)
    if status == 429:
        wait = float(retry_after) if retry_after and retry_after.isdigit() else 5.0
        return Verdict("the server is busy with this address (HTTP 429)", after=wait)
    if status == 503:
        return Verdict("the server is full or stopping (HTTP 503)")
    if status >= 500:
        return Verdict(f"the server failed (HTTP {status})")
    # 200, 404, 426…: something listens there, and it is not a Tally server.
    return Verdict(f"this is not a Tally server: it answered HTTP {status} instead of a WebSocket", retry=False)


def describe_failure(exc: BaseException) -> str:
    """Why a connection attempt failed, for errors that retrying may fix."""
    if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
        return NOT_LISTENING
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, ProtocolError):
        return f"the server sent something we do not understand ({exc.message})"
    return str(exc) or type(exc).__name__


# What the session's own failures and websockets' say; anything else escapes (a bug).
FAILURES = (
    Resync, GiveUp, Stalled, InvalidStatus, InvalidMessage, InvalidURI, ConnectionClosed,
    ssl.SSLCertVerificationError, OSError, InvalidHandshake, TimeoutError, ProtocolError,
)  # fmt: skip


def classify(exc: BaseException) -> Verdict:
    """What a failure of one of ours, or of websockets, means for the user and for retrying."""
    if isinstance(exc, Resync):
        return Verdict(RESYNC)
    if isinstance(exc, GiveUp):
        return Verdict(str(exc), retry=False)
    if isinstance(exc, Stalled):
        return Verdict(str(exc))
    if isinstance(exc, InvalidStatus):
        return describe_status(exc.response.status_code, retry_after=exc.response.headers.get("Retry-After"))
    if isinstance(exc, InvalidMessage):
        # A server dying under us accepts and drops connections for a moment, and so does a service that
        # is not HTTP at all: both are worth another try (the status line says which it may be).
        return Verdict("the server closed the connection before its handshake (is it a Tally server?)")
    if isinstance(exc, InvalidURI):
        return Verdict(f"bad URL: {exc}", retry=False)
    if isinstance(exc, ConnectionClosed):
        code = None if exc.rcvd is None else exc.rcvd.code
        reason = describe_close(
            we_closed_first=exc.sent is not None and exc.rcvd_then_sent is False,
            code=code,
            reason="" if exc.rcvd is None else exc.rcvd.reason,
        )
        return Verdict(reason, resync=code == SERVICE_RESTART)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"the server's certificate is not trusted ({exc.verify_message}); see --cafile"
        return Verdict(reason, retry=False)
    return Verdict(describe_failure(exc))
