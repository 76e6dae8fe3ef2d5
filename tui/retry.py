"""When to try again and what to tell the user: the connection's failures, classified.

Pure functions, so that the wording and the decisions are tested without a
socket; :mod:`tui.connection` maps each websockets exception onto them.
"""

from __future__ import annotations

import random

from server.protocol import ProtocolError

__all__ = ["backoff", "describe_close", "describe_failure", "describe_refusal"]


def backoff(attempt: int, *, base: float = 0.5, cap: float = 15.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, …): exponential, capped, jittered.

    Full jitter between half and all of the step spreads dashboards out after a
    server restart instead of having them all knock at once.
    """
    step = min(cap, base * 2.0 ** (attempt - 1))
    return step * random.uniform(0.5, 1.0)


def describe_close(*, we_closed_first: bool, code: int | None, reason: str) -> str:
    """Why a connection ended, from its closing handshake (``code`` is None if none arrived)."""
    if we_closed_first:
        return "reconnecting as asked"
    if code == 1001:
        return "the server is restarting"
    if code is not None:
        return f"the server closed the connection ({code}{': ' + reason if reason else ''})"
    return "the connection was lost"


def describe_refusal(status: int) -> str:
    """Why the server refused the handshake with HTTP ``status`` (4xx: retrying will not help)."""
    if status == 401:
        return "the server wants a valid token (--token or TALLY_TOKEN)"
    if status == 403:
        return "the server refused this client (HTTP 403)"
    return f"the server refused the connection (HTTP {status})"


def describe_failure(exc: BaseException) -> str:
    """Why a connection attempt failed, for errors that retrying may fix."""
    if isinstance(exc, ConnectionRefusedError):
        return "no server is listening"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, ProtocolError):
        return f"the server sent something we do not understand ({exc.message})"
    return str(exc) or type(exc).__name__
