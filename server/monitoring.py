"""How the server is doing, for whoever runs it: /healthz, /readyz and /metrics on the server's own port.

Answered in the HTTP handshake (websockets' ``process_request``), so there is
no second port and no web framework. ``/healthz`` says the process is alive
(never behind the token); ``/readyz`` that the ledger is loaded and its store
answers; ``/metrics`` is Prometheus text from a registry of this server's own
(behind the token when the server has one).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["HEALTH_PATHS", "Metrics", "health_response"]

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")

# The *_created series double what is scraped and say nothing a restart counter does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Everything the server counts, in a registry of its own (not the process-wide default)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge(
            "tally_connections_open", "Open connections, by what they speak.", ["protocol"], registry=registry
        )
        self.handshakes_refused = Counter(
            "tally_handshakes_refused_total", "Handshakes refused, by reason.", ["reason"], registry=registry
        )
        self.messages_received = Counter(
            "tally_messages_received_total", "Messages received from clients, by protocol.", ["protocol"],
            registry=registry,
        )  # fmt: skip
        self.messages_refused = Counter(
            "tally_messages_refused_total", "Messages answered with an error, by error code.", ["code"],
            registry=registry,
        )  # fmt: skip
        self.adds_applied = Counter("tally_adds_applied_total", "Adds applied to the total.", registry=registry)
        self.duplicates = Counter(
            "tally_duplicates_total", "Adds answered with their original ack (a resend).", registry=registry
        )
        self.fanout_frames = Counter("tally_fanout_frames_total", "Frames written to clients.", registry=registry)
        self.fanout_bytes = Counter("tally_fanout_bytes_total", "Bytes written to clients.", registry=registry)
        self.dropped = Counter(
            "tally_clients_dropped_total", "Clients dropped by the server, by reason.", ["reason"], registry=registry
        )
        self.commit_seconds = Histogram(
            "tally_store_commit_seconds", "Time to store one batch of adds.", registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )  # fmt: skip
        self.batch_size = Histogram(
            "tally_store_batch_size", "Adds stored in one batch (group commit).", registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )  # fmt: skip
        self.update_seconds = Histogram(
            "tally_update_latency_seconds", "Time from receiving an add to publishing its update.", registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )  # fmt: skip
        self.total = Gauge("tally_total", "The total.", registry=registry)
        self.seq = Gauge("tally_seq", "The seq of the latest update.", registry=registry)
        self.online = Gauge("tally_people_online", "People online (in a cluster, on every server).", registry=registry)
        self._open: dict[str, Gauge] = {}
        self._received: dict[str, Counter] = {}

    # labels() takes a lock and validates its values on every call: every connection asks for
    # these, so the few children there are are kept.

    def open_for(self, protocol: str) -> Gauge:
        """``connections`` for one protocol."""
        child = self._open.get(protocol)
        if child is None:
            child = self._open[protocol] = self.connections.labels(protocol)
        return child

    def received_for(self, protocol: str) -> Counter:
        """``messages_received`` for one protocol."""
        child = self._received.get(protocol)
        if child is None:
            child = self._received[protocol] = self.messages_received.labels(protocol)
        return child

    def text(self) -> bytes:
        return generate_latest(self.registry)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def health_response(path: str, *, ready: Callable[[], str | None], metrics: Metrics, authorised: bool) -> Response:
    """The answer to one of ``HEALTH_PATHS``. ``ready`` returns why the server is not ready, or None."""
    if path == "/healthz":
        return _response(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
    if path == "/readyz":
        problem = ready()
        if problem is None:
            return _response(HTTPStatus.OK, b"ready\n", "text/plain; charset=utf-8")
        return _response(
            HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {problem}\n".encode(), "text/plain; charset=utf-8"
        )
    if not authorised:
        response = _response(HTTPStatus.UNAUTHORIZED, b"A valid token is required.\n", "text/plain; charset=utf-8")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tally"'
        return response
    return _response(HTTPStatus.OK, metrics.text(), CONTENT_TYPE_LATEST)
