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

from tally.server.connection import Gate, TallyConnection
from tally.server.monitoring import HEALTH_PATHS, Metrics, front_page, health_response, wants_websocket

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
        # Compare digests: constant time whatever the lengths of what is sent.
        self._expected = None if token is None else _digest(bearer(token))
        self.gate = gate
        self.max_connections = max_connections
        self.open_connections = open_connections
        self.metrics = metrics
        self.ready = ready
        self.serving = serving

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path in HEALTH_PATHS:
            return health_response(request.path, ready=self.ready, metrics=self.metrics,
                                   authorised=self._authorised(request))  # fmt: skip
        if request.path == "/" and not wants_websocket(request):
            tls = connection.transport.get_extra_info("ssl_object") is not None
            return front_page(request.headers.get("Host"), tls=tls, token=self._expected is not None)
        refusal = self._refusal(connection, request)
        if refusal is not None:
            self.metrics.handshakes_refused.labels(refusal[0]).inc()
            return refusal[1]
        return None

    def _authorised(self, request: Request) -> bool:
        if self._expected is None:
            return True
        return hmac.compare_digest(_digest(request.headers.get("Authorization", "")), self._expected)

    def _refusal(self, connection: ServerConnection, request: Request) -> tuple[str, Response] | None:
        """Why this handshake is refused (a label for the metrics) and the answer; None to go on."""
        limits = self.gate.limits
        entry = self.gate[connection.host] if isinstance(connection, TallyConnection) else None
        if entry is not None:
            if entry.connections > limits.max_connections_per_address:
                return "address_full", _too_many(connection, "Too many connections from your address.\n", retry=10)
            if not entry.connects.take():
                text = "Too many new connections from your address; slow down.\n"
                return "address_rate", _too_many(connection, text, retry=1)
        if self.open_connections() >= self.max_connections:
            text = "Too many connections; try again later.\n"
            return "full", connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, text)
        if not self.serving():
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Starting: waiting for the store.\n")
            response.headers["Retry-After"] = "1"
            return "starting", response
        if self._expected is None:
            return None
        if entry is not None and entry.auth.tokens < 1:
            # This address keeps sending wrong tokens: stop comparing them for a while.
            return "auth_throttled", _too_many(connection, "Too many failed attempts; try again later.\n", retry=10)
        if self._authorised(request):
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
