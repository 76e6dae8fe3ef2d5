"""How the server is doing, for whoever runs it: /, /healthz, /readyz and /metrics on the server's own port.

Answered in the HTTP handshake (websockets' ``process_request``), so there is
no second port and no web framework. ``/`` (without a WebSocket upgrade) says
what the port is and how to connect; ``/healthz`` says the process is alive
(never behind the token); ``/readyz`` that the ledger is loaded and its store
answers; ``/metrics`` is Prometheus text from a registry of this server's own
(behind the token when the server has one), with the process and Python
collectors, and every labelled series present from the start (at 0), so that
``rate()`` and alerts see a refusal from the first one. docs/operations.md
lists every metric; CHANGELOG.md every rename.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from http import HTTPStatus

import websockets
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tally.server import DISTRIBUTION, version
from tally.server.protocol import ErrorCode

__all__ = ["HEALTH_PATHS", "STORE_STATES", "Metrics", "front_page", "health_response", "target_path", "wants_websocket"]

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")
# What tally_store_state reports, one series each: the store takes adds, is away for now, or lost
# acknowledged history. A state the app reports beyond these gets a series of its own.
STORE_STATES = ("available", "unavailable", "rewound")
# Every label value known in advance, so each series exists (at 0) from the first scrape.
PROTOCOLS = ("tally.v2", "tally.v1", "bare")
HANDSHAKE_REFUSALS = ("full", "address_full", "address_rate", "starting", "token", "auth_throttled")
ERROR_CODES = tuple(value for name, value in vars(ErrorCode).items() if name.isupper())
DROP_REASONS = ("slow",)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The *_created series double what is scraped and say nothing a restart counter does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


class StoreState(Collector):
    """``tally_store_up`` and ``tally_store_state{state}``, read from ``state()`` at each scrape."""

    def __init__(self) -> None:
        self.state: Callable[[], str] = lambda: "available"

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.state()
        up = GaugeMetricFamily(
            "tally_store_up", "1 while the store takes adds; 0 while it does not (why: tally_store_state)."
        )
        up.add_metric([], 1.0 if now == "available" else 0.0)
        yield up
        states = GaugeMetricFamily(
            "tally_store_state", "The store's state now: 1 for the current one, 0 for the others.", labels=["state"]
        )
        for state in STORE_STATES if now in STORE_STATES else (*STORE_STATES, now):
            states.add_metric([state], 1.0 if state == now else 0.0)
        yield states


class Metrics:
    """Everything the server counts, in a registry of its own (not the process-wide default)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # The process (CPU, memory, open files) and Python (version, garbage collection), as every exporter has.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        if GC_COLLECTOR is not None:
            GCCollector(registry=registry)
        Info("tally_build", "The running Tally: its version, and the websockets library's.", registry=registry).info(
            {"version": version(), "distribution": DISTRIBUTION, "websockets": websockets.version.version}
        )
        self.store = StoreState()
        registry.register(self.store)
        self.connections = Gauge(
            "tally_connections_open", "Open connections, by what they speak.", ["protocol"], registry=registry
        )
        self.connections_max = Gauge(
            "tally_connections_max", "The most connections this server accepts (clamped to its open-file limit).",
            registry=registry,
        )  # fmt: skip
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
        self.adds_refused = Counter(
            "tally_adds_refused_total", "Adds refused (nothing added), by error code: unavailable, overflow…",
            ["code"], registry=registry,
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
            buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.batch_size = Histogram(
            "tally_store_batch_size", "Adds stored in one batch (group commit).", registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )  # fmt: skip
        self.update_seconds = Histogram(
            "tally_update_latency_seconds", "Time from receiving an add to publishing its update.", registry=registry,
            buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        # Not tally_total: only a counter may end in _total, and the total goes down as well as up.
        self.total = Gauge("tally_total_value", "The shared total now.", registry=registry)
        self.seq = Gauge("tally_seq", "The seq of the latest update.", registry=registry)
        self.online = Gauge("tally_people_online", "People online (in a cluster, on every server).", registry=registry)
        self._open: dict[str, Gauge] = {}
        self._received: dict[str, Counter] = {}
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        for protocol in PROTOCOLS:
            self.open_for(protocol)
            self.received_for(protocol)
        for reason in HANDSHAKE_REFUSALS:
            self.handshakes_refused.labels(reason)
        for code in ERROR_CODES:
            self.messages_refused.labels(code)
            self.adds_refused.labels(code)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)

    def watch_store(self, state: Callable[[], str]) -> None:
        """Report ``state()`` (one of STORE_STATES) as tally_store_up and tally_store_state at each scrape."""
        self.store.state = state

    def refused(self, code: str, *, add: bool) -> None:
        """A message answered with the error ``code``; ``add``: it was an add, and nothing was added."""
        self.messages_refused.labels(code).inc()
        if add:
            self.adds_refused.labels(code).inc()

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


def wants_websocket(request: Request) -> bool:
    """True if the request asks for a WebSocket (a browser or curl asking for ``/`` does not)."""
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


# A Host header worth repeating back: a name or address, and a port.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def front_page(host: str | None, *, tls: bool, token: bool) -> Response:
    """``/`` for a person who opened the port in a browser or with curl: what it is and how to connect."""
    where = f"{'wss' if tls else 'ws'}://{host if host and _HOST.fullmatch(host) else 'HOST:PORT'}"
    access = " --token-file FILE" if token else ""
    text = (
        f"This is a Tally server ({DISTRIBUTION} {version()}). This port speaks WebSocket, not web pages.\n\n"
        f"Open a dashboard:     tally --url {where}{access}\n"
        f"Add from a script:    tally add 5 --url {where}{access}\n"
        f"Watch every update:   tally watch --url {where}{access}\n\n"
        + ("This server requires its token (Authorization: Bearer ...).\n" if token else "")
        + "Health: /healthz and /readyz. Prometheus metrics: /metrics"
        + (" (with the token)" if token else "")
        + ".\nThe manual: README.md and docs/ in Tally's source.\n"
    )
    return _response(HTTPStatus.OK, text.encode(), "text/plain; charset=utf-8")


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def target_path(target: str) -> str:
    """The path of a request target, without its query or fragment (``/readyz?verbose`` is ``/readyz``)."""
    return target.partition("?")[0].partition("#")[0]


def health_response(path: str, *, ready: Callable[[], str | None], metrics: Metrics) -> Response:
    """The answer to one of ``HEALTH_PATHS`` (for /metrics, once the token was checked).

    ``ready`` returns why the server is not ready, or None.
    """
    if path == "/healthz":
        return _response(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
    if path == "/readyz":
        problem = ready()
        if problem is None:
            return _response(HTTPStatus.OK, b"ready\n", "text/plain; charset=utf-8")
        return _response(
            HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {problem}\n".encode(), "text/plain; charset=utf-8"
        )
    return _response(HTTPStatus.OK, metrics.text(), CONTENT_TYPE_LATEST)
