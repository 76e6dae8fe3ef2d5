"""Who may open a connection: the shared token, and the connection limit.

Runs during the HTTP handshake, before any WebSocket frame, so a refused
client costs one HTTP response and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

__all__ = ["Admission", "bearer"]


def bearer(token: str) -> str:
    """The Authorization header value that carries ``token``."""
    return f"Bearer {token}"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class Admission:
    """``process_request`` for websockets: refuse with 503 when full, 401 without the token."""

    def __init__(self, *, token: str | None, max_connections: int, open_connections: Callable[[], int]) -> None:
        # Compare digests: constant time whatever the lengths of what is sent.
        self._expected = None if token is None else _digest(bearer(token))
        self.max_connections = max_connections
        self.open_connections = open_connections

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.open_connections() >= self.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections; try again later.\n")
        if self._expected is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(_digest(given), self._expected):
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "A valid token is required.\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="tally"'
                return response
        return None
