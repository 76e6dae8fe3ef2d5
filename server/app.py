"""Wiring: build the pieces, serve, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import secrets
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import platformdirs
from websockets.asyncio.server import Server, ServerConnection, serve, unix_serve
from websockets.typing import Origin, Subprotocol

from tally.server import version
from tally.server.access import Admission
from tally.server.connection import Gate, Liveness, connection_class
from tally.server.fanout import Fanout
from tally.server.handler import Handler
from tally.server.ledger import Ledger
from tally.server.limits import Limits
from tally.server.monitoring import Metrics
from tally.server.presence import Announcer, LocalPresence, Roster
from tally.server.protocol import HISTORY_POINTS, SUBPROTOCOLS, LimitsInfo, ServerInfo, Welcome
from tally.server.session import RECENT_IN_WELCOME, Room, update_of
from tally.server.state import Record
from tally.server.store import Store, open_store

if TYPE_CHECKING:
    from tally.server.cluster import Cluster
    from tally.server.store.redis import RedisStore

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerConfig", "TallyServer", "default_db_path", "file_limit"]

log = logging.getLogger("tally.server")
# Pending connections the kernel may queue for us (it caps this at net.core.somaxconn).
BACKLOG = 4096
# File descriptors kept back from connections: the database, its WAL, the log, the listening socket…
RESERVED_FDS = 32
# And sockets still in their handshake beyond the connection cap.
HANDSHAKE_FDS = 64
# A v1 welcome lists everyone; past this many it lists the first ones (the frame must stay
# well under a dashboard's 1 MiB limit).
V1_WELCOME_CLIENTS = 1000

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Speak the newest tally version offered; otherwise carry on without a subprotocol.

    websockets refuses a client that offers none when the server lists one;
    the original blog client offers none and must keep working.
    """
    return next((Subprotocol(ours) for ours in SUBPROTOCOLS if ours in offered), None)


def exposed(host: str) -> bool:
    """True if ``host`` can be reached from other machines (anything but loopback)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name that may resolve anywhere


def origins(allowed: tuple[str, ...]) -> Sequence[Origin | None] | None:
    """websockets' ``origins``: no Origin header (not a browser) is always fine."""
    if "*" in allowed:
        return None
    return [None, *(Origin(origin) for origin in allowed)]


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def default_db_path() -> Path:
    return platformdirs.user_data_path("tally") / "tally.db"


def file_limit() -> int:
    """Raise the soft limit on open files to the hard one, and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Serve on this Unix socket instead of host and port (the per-user local server).
    unix: str | None = None
    # A path, ":memory:", or a store URL (memory://, sqlite:///path).
    db: str = field(default_factory=lambda: str(default_db_path()))
    # Start even if the stored ledger went backwards (a new epoch begins).
    accept_ledger_loss: bool = False
    # With a Redis store: the prefix of its keys (several tallies may share one Redis), and
    # whether to serve from a Redis that keeps no append-only file.
    redis_prefix: str = "tally:"
    redis_no_persistence: bool = False
    # In a cluster, how long a server that stopped beating counts as alive (its clients then leave).
    cluster_ttl: float = 5.0
    # Stop after this many seconds with no connection (for auto-started servers).
    exit_when_idle: float | None = None
    limits: Limits = field(default_factory=Limits)
    # A shared secret clients must send as "Authorization: Bearer <token>".
    token: str | None = None
    # Serve wss:// with this certificate chain and key.
    tls_cert: str | None = None
    tls_key: str | None = None
    # Browser pages allowed to connect, by Origin; clients that send no Origin
    # (dashboards, scripts) always may. ("*",) allows any page.
    allow_origins: tuple[str, ...] = ()
    # permessage-deflate costs memory per connection and invites compression bombs.
    compression: bool = False
    # Send every client's address to every dashboard (only the operator sees them otherwise).
    show_addresses: bool = False
    # A silently dead peer is dropped once it has sent nothing, not even a pong,
    # for ping_interval + ping_timeout (20 s). close_timeout bounds a clean close.
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    close_timeout: float = 5.0


class TallyServer:
    """One Tally server: a store behind a ledger, a roster, a fan-out and a handler.

    ``async with TallyServer(config) as server:`` serves until the block ends.
    """

    def __init__(self, config: ServerConfig, *, store: Store | None = None) -> None:
        """``store`` overrides the one ``config.db`` names (tests inject faulty ones)."""
        self.config = config
        # The id prefixes every client id, which must be unique across a cluster's servers.
        self.info = ServerInfo(version=version(), id=secrets.token_hex(4))
        limits = config.limits
        self.metrics = Metrics()
        self.roster = Roster(live_presence=limits.live_presence)
        self.fanout = Fanout(self._current_welcome, self.roster, self.metrics)
        store = store or open_store(
            config.db,
            accept_loss=config.accept_ledger_loss,
            retention=limits.retention,
            redis_prefix=config.redis_prefix,
            redis_no_persistence=config.redis_no_persistence,
        )
        self.ledger = Ledger(store, self._publish, retention=limits.retention, metrics=self.metrics)
        self.metrics.total.set_function(lambda: self.ledger.total)
        self.metrics.seq.set_function(lambda: self.ledger.seq)
        self.metrics.online.set_function(lambda: len(self.roster))
        self.metrics.watch_store(lambda: "available" if self.ledger.available else "unavailable")
        self.metrics.connections_max.set_function(lambda: self.max_connections)
        self.cluster: Cluster | None = None
        self.presence: Announcer
        if getattr(store, "shared", False):
            # Imported only for a shared store: Redis's client is an optional extra.
            from tally.server.cluster import Cluster

            self.cluster = Cluster(
                cast("RedisStore", store), self.ledger, self.roster, self.fanout, self.info.id, ttl=config.cluster_ttl
            )
            self.presence = self.cluster
        else:
            self.presence = LocalPresence(self.roster, self.fanout)
        room = Room(
            self.ledger, self.roster, self.presence, self.fanout, limits, self.info, self.metrics, config.show_addresses
        )
        self.handler = Handler(room)
        self.liveness = Liveness(interval=config.ping_interval, timeout=config.ping_timeout)
        self.gate = Gate(limits, capacity=0)
        self.max_connections = limits.max_connections
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        if self.config.unix is not None:
            return f"unix://{self.config.unix}"
        scheme = "wss" if self.config.tls_cert else "ws"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}"

    def not_ready(self) -> str | None:
        """Why this server cannot serve adds now (for /readyz), or None."""
        if self._server is None:
            return "starting"
        if self.cluster is not None and self.cluster.lost:
            return f"the shared ledger is lost ({self.cluster.lost})"
        if not self.ledger.available:
            return "the store is unavailable"
        return None

    async def __aenter__(self) -> TallyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _plan_connections(self) -> None:
        """Fit the connection cap to the file descriptors this process may open."""
        soft = file_limit()
        self.gate.capacity = soft - RESERVED_FDS
        fit = soft - RESERVED_FDS - HANDSHAKE_FDS
        if self.max_connections > fit:
            log.warning(
                "the open-file limit is %d: serving at most %d connections, not %d "
                "(raise it with `ulimit -n` or LimitNOFILE= to serve more)",
                soft,
                max(fit, 1),
                self.max_connections,
            )
            self.max_connections = max(fit, 1)

    async def start(self) -> None:
        config = self.config
        if config.unix is None and exposed(config.host):
            if config.token is None:
                log.warning(
                    "LISTENING ON %s WITHOUT A TOKEN: anyone who can reach this address can add to the total. "
                    "Set --token-file (or TALLY_TOKEN) unless this network is trusted.",
                    config.host,
                )
            elif config.tls_cert is None:
                log.warning(
                    "LISTENING ON %s WITH A TOKEN BUT WITHOUT TLS: the token crosses the network in clear text. "
                    "Set --tls-cert and --tls-key unless this network is trusted.",
                    config.host,
                )
        self._plan_connections()
        await self.ledger.start()
        if self.cluster is not None:
            try:
                await self.cluster.start()
            except BaseException:
                await self.ledger.stop()
                raise
        admission = Admission(
            token=config.token,
            gate=self.gate,
            max_connections=self.max_connections,
            open_connections=lambda: self.handler.open_connections,
            metrics=self.metrics,
            ready=self.not_ready,
        )
        options: dict[str, Any] = {
            "select_subprotocol": select_subprotocol,
            "process_request": admission,
            "origins": origins(config.allow_origins),
            "compression": "deflate" if config.compression else None,
            "ssl": tls_context(config.tls_cert, config.tls_key),
            "max_size": config.limits.max_message_bytes,
            # Liveness (server/connection.py) pings without waiting behind the backlog.
            "ping_interval": None,
            "close_timeout": config.close_timeout,
            "open_timeout": config.limits.hello_timeout,
            "create_connection": connection_class(self.gate, config.limits),
        }
        try:
            if config.unix is not None:
                self._server = await unix_serve(self.handler, config.unix, **options)
            else:
                # asyncio's default backlog of 100 overflows in a join storm, and a dropped
                # handshake waits a whole second for TCP to retry it.
                self._server = await serve(self.handler, config.host, config.port, backlog=BACKLOG, **options)
        except BaseException:
            await self.ledger.stop()
            raise
        self._tasks.append(asyncio.create_task(self.liveness.run(lambda: self.server.connections, self.gate)))
        log.info(
            "serving on %s (store: %s, ledger %s, total=%d, seq=%d)",
            self.url,
            self.config.db,
            self.ledger.id,
            self.ledger.total,
            self.ledger.seq,
        )

    async def stop(self) -> None:
        """Close every connection with 1001, then store everything already received."""
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close(reason="server stopped")
            await self._server.wait_closed()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.ledger.stop()
        log.info("stopped (total=%d, seq=%d)", self.ledger.total, self.ledger.seq)

    async def run(self) -> None:
        """Serve until SIGINT, SIGTERM or (if configured) idleness; then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Before starting: a signal that arrives as soon as "serving on" is logged must stop cleanly too.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            if self.config.exit_when_idle is None:
                await stop.wait()
            else:
                await self._wait_until_idle(stop, self.config.exit_when_idle)
        finally:
            await self.stop()

    async def _wait_until_idle(self, stop: asyncio.Event, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while not stop.is_set():
            if self.server.connections:
                idle_since = loop.time()
            elif loop.time() - idle_since >= seconds:
                log.info("no connection for %.0f s; exiting", seconds)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)

    def _current_welcome(self, version: int) -> Welcome:
        """Everything joiners of this moment share (``you`` and their own fields are filled in per joiner)."""
        ledger, roster, limits = self.ledger, self.roster, self.config.limits
        # v1 has no pages: it gets the first ones. v2 gets everyone in a small room, and
        # asks for a page at a time in a large one.
        everyone = roster.clients() if roster.live else ()
        clients = roster.clients(limit=V1_WELCOME_CLIENTS) if version == 1 else everyone
        recent = list(ledger.recent)[-RECENT_IN_WELCOME:] if version >= 2 else []
        return Welcome(
            you="",
            total=ledger.total,
            seq=ledger.seq,
            clients=clients,
            history=ledger.points(HISTORY_POINTS),
            ledger=ledger.id,
            epoch=ledger.epoch,
            server=self.info,
            limits=LimitsInfo(
                max_amount=limits.max_amount, rate=limits.rate, burst=limits.burst, retention=limits.retention
            ),
            online=len(roster),
            live=roster.live,
            recent=tuple(update_of(record) for record in recent),
        )

    def _publish(self, records: Sequence[Record]) -> None:
        for record in records:
            self.roster.credit(record.client, self.ledger.contribution(record.session))
            self.fanout.publish(update_of(record))
