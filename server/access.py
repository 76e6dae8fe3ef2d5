"""Who may open a connection: the caps, the pace of new connections, and the shared token (and the health
endpoints, answered in the same handshake).

Runs during the HTTP handshake, before any WebSocket frame, so a refused
client costs one HTTP response and nothing else. Counting starts earlier, at
accept (:class:`server.connection.Gate`), so that sockets still handshaking
count towards the caps too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tally.server.connection import Address, Gate, TallyConnection
from tally.server.monitoring import HEALTH_PATHS, Metrics, front_page, health_response, target_path, wants_websocket

__all__ = ["Admission", "bearer"]

log = logging.getLogger("tally.server")


def bearer(token: str) -> str:
    """The Authorization header value that carries ``token``."""
    return f"Bearer {token}"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class Admission:
    """``process_request`` for websockets: 429 for an address over its share, 503 when full, 401 without the token."""

    def __init__(
        self,
        *,
        token: str | None,
        gate: Gate,
        max_connections: int,
        open_connections: Callable[[], int],
        metrics: Metrics,
        ready: Callable[[], str | None],
        serving: Callable[[], bool] = lambda: True,
    ) -> None:
        """``ready`` says why the server cannot serve adds now (for /readyz), or None; until ``serving`` is
        true (the ledger is loaded) WebSocket handshakes are refused with 503."""
        self._expected = None if token is None else _digest(bearer(token))
        self.gate = gate
        self.max_connections = max_connections
        self.open_connections = open_connections
        self.metrics = metrics
        self.ready = ready
        self.serving = serving

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        entry = self.gate[connection.host] if isinstance(connection, TallyConnection) else None
        path = target_path(request.path)
        # Every request counts in its address's pace, health checks and the front page included:
        # a flood of them is refused like a flood of handshakes.
        refusal = self._crowded(connection, entry)
        if refusal is None:
            if path == "/" and not wants_websocket(request):
                tls = connection.transport.get_extra_info("ssl_object") is not None
                return front_page(request.headers.get("Host"), tls=tls, token=self._expected is not None)
            if path not in HEALTH_PATHS:
                refusal = self._refusal(connection, request, entry)
            elif path == "/metrics":
                refusal = self._unauthorised(connection, request, entry)
            if refusal is None and path in HEALTH_PATHS:
                return health_response(path, ready=self.ready, metrics=self.metrics)
        if refusal is None:
            return None  # on to the WebSocket
        self.metrics.handshakes_refused.labels(refusal[0]).inc()
        return refusal[1]

    def _crowded(self, connection: ServerConnection, entry: Address | None) -> tuple[str, Response] | None:
        """A refusal if the address holds too many connections or opens them too fast."""
        if entry is None:
            return None
        if entry.connections > self.gate.limits.max_connections_per_address:
            return "address_full", _too_many(connection, "Too many connections from your address.\n", retry=10)
        if not entry.connects.take():
            text = "Too many new connections from your address; slow down.\n"
            return "address_rate", _too_many(connection, text, retry=1)
        return None

    def _refusal(
        self, connection: ServerConnection, request: Request, entry: Address | None
    ) -> tuple[str, Response] | None:
        """Why this WebSocket handshake is refused (a label for the metrics) and the answer; None to go on."""
        if self.open_connections() >= self.max_connections:
            text = "Too many connections; try again later.\n"
            return "full", connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, text)
        if not self.serving():
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Starting: waiting for the store.\n")
            response.headers["Retry-After"] = "1"
            return "starting", response
        return self._unauthorised(connection, request, entry)

    def _unauthorised(
        self, connection: ServerConnection, request: Request, entry: Address | None
    ) -> tuple[str, Response] | None:
        """The token check, the same for a handshake and for /metrics: None if the token is right (or not needed).

        An address that keeps sending wrong tokens is refused with 429 without its token being
        compared, until its failures are forgiven (auth_failures, one every 6 s).
        """
        if self._expected is None:
            return None
        if entry is not None and entry.auth.tokens < 1:
            return "auth_throttled", _too_many(connection, "Too many failed attempts; try again later.\n", retry=10)
        # Compare digests: constant time whatever the lengths of what is sent.
        if hmac.compare_digest(_digest(request.headers.get("Authorization", "")), self._expected):
            return None
        if entry is not None:
            entry.auth.take()
        log.warning("refuse %s: wrong or missing token", connection.remote_address,
                    extra={"event": "refuse", "address": str(connection.remote_address), "code": "token"})  # fmt: skip
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "A valid token is required.\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tally"'
        return "token", response


def _too_many(connection: ServerConnection, text: str, *, retry: int) -> Response:
    response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, text)
    response.headers["Retry-After"] = str(retry)
    return response
