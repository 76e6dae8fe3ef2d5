"""Wiring: build the pieces, serve, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, serve, unix_serve

from tally.server import version
from tally.server.access import Admission
from tally.server.claims import ClaimChecker
from tally.server.commit import Commit, LocalCommit, SharedCommit
from tally.server.config import (
    ServerConfig,
    exposed,
    file_limit,
    origins,
    select_subprotocol,
    tls_context,
)
from tally.server.connection import Gate, Liveness, connection_class
from tally.server.fanout import Fanout
from tally.server.handler import Handler
from tally.server.health import StoreHealth
from tally.server.history import HistoryReader
from tally.server.ledger import Ledger
from tally.server.monitoring import Metrics
from tally.server.presence import Announcer, LocalPresence, Roster
from tally.server.protocol import ServerInfo, StoreStatus
from tally.server.publish import Publisher
from tally.server.session import Room
from tally.server.store import Store, open_store
from tally.server.store.address import place, shown
from tally.server.store.base import SharedStore, StoreUnavailable
from tally.server.view import LedgerView
from tally.server.witness import Witness, default_witness_path

if TYPE_CHECKING:
    from tally.server.cluster import Cluster

__all__ = ["StoreTimeout", "TallyServer"]

log = logging.getLogger("tally.server")
# Pending connections the kernel may queue for us (it caps this at net.core.somaxconn).
BACKLOG = 4096
# File descriptors kept back from connections: the database, its WAL, the log, the listening socket…
RESERVED_FDS = 32
# And sockets still in their handshake beyond the connection cap.
HANDSHAKE_FDS = 64


def store_for(config: ServerConfig) -> Store:
    """The store ``config`` names, with its options."""
    return open_store(
        config.db,
        accept_loss=config.accept_ledger_loss,
        retention=config.limits.retention,
        redis_prefix=config.redis_prefix,
        redis_no_persistence=config.redis_no_persistence,
        redis_replicas=config.redis_replicas,
        redis_replica_timeout=config.redis_replica_timeout,
    )


class TallyServer:
    """One Tally server: a store behind a ledger, a roster, a fan-out and a handler.

    ``async with TallyServer(config) as server:`` serves until the block ends.
    """

    def __init__(self, config: ServerConfig, *, store: Store | None = None, witness: Witness | None = None) -> None:
        """``store`` and ``witness`` override the ones ``config`` names (tests inject faulty ones)."""
        self.config = config
        # The id prefixes every client id, which must be unique across a cluster's servers.
        self.info = ServerInfo(version=version(), id=secrets.token_hex(4))
        limits = config.limits
        self.metrics = Metrics()
        self.health = StoreHealth()
        self.roster = Roster(live_presence=limits.live_presence)
        self.view = LedgerView()
        roster = self.roster
        self.fanout = Fanout(lambda v: self.publisher.welcome(v), lambda: (len(roster), roster.live), self.metrics)
        self.publisher = Publisher(self.view, self.roster, self.fanout, server=self.info, limits=limits)
        self.store = store or store_for(config)
        self.cluster: Cluster | None = None
        self.presence: Announcer
        commit: Commit
        if isinstance(self.store, SharedStore):
            self.witness = witness or Witness(Path(config.witness) if config.witness else default_witness_path())
            commit = SharedCommit(self.store, self.witness, place=self.place)
        else:
            commit = LocalCommit(self.store)
        self.ledger = Ledger(
            commit, self.publisher.records, self.health, view=self.view, retention=limits.retention,
            max_batch=config.max_batch, metrics=self.metrics,
        )  # fmt: skip
        self.history = HistoryReader(self.store, self.view)
        if isinstance(self.store, SharedStore):
            self.cluster = self.presence = self._cluster(self.store)
        else:
            self.presence = LocalPresence(self.roster, self.publisher.presence)
        self.health.listeners.append(self._store_changed)
        self.metrics.total.set_function(lambda: self.view.total)
        self.metrics.seq.set_function(lambda: self.view.seq)
        self.metrics.online.set_function(lambda: len(self.roster))
        self.metrics.watch_store(lambda: self.health.state)
        self.metrics.connections_max.set_function(lambda: self.max_connections)
        self.claims = ClaimChecker(
            self.store, self.view, self.health, repair=self.cluster.repair if self.cluster else None,
            accept_loss=config.accept_ledger_loss, resync=self.fanout.close_all,
        )  # fmt: skip
        room = Room(
            self.ledger, self.roster, self.presence, self.publisher, self.fanout, self.history, limits, self.info,
            self.metrics, self.claims.check, config.show_addresses,
        )  # fmt: skip
        self.handler = Handler(room)
        self.liveness = Liveness(interval=config.ping_interval, timeout=config.ping_timeout)
        self.gate = Gate(limits, capacity=0)
        self.max_connections = limits.max_connections
        self._server: Server | None = None
        self._loaded = False
        self._waiting = ""  # why the store is not open yet, while it is not
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def place(self) -> str:
        """The store's URL, and its prefix for Redis: where the witness says a ledger lived."""
        return place(self.config.db, self.config.redis_prefix)

    def _cluster(self, store: SharedStore) -> Cluster:
        # Imported only for a shared store: Redis's client is an optional extra.
        from tally.server.cluster import Cluster
        from tally.server.repair import Repair

        ttl = self.config.cluster_ttl
        heartbeat = min(1.0, ttl / 3)
        repair = Repair(
            store, self.witness, self.view, self.info.id, place=self.place, retention=self.config.limits.retention,
            grace=2 * heartbeat, wait_for=3 * ttl, accept_loss=self.config.accept_ledger_loss,
        )  # fmt: skip
        return Cluster(
            store, self.ledger, self.roster, self.publisher.presence, self.info.id, self.witness, repair,
            place=self.place, resync=self.fanout.close_all, ttl=ttl, heartbeat=heartbeat,
        )  # fmt: skip

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
        if not self._loaded:
            return f"waiting for the store ({self._waiting or 'loading'})"
        if not self.health.available:
            return f"the store is {self.health.state}: {self.health.reason}"
        return None

    def _store_changed(self, old: StoreStatus, new: StoreStatus) -> None:
        """Once per change of the store's state: one log line, one message to every dashboard."""
        self.publisher.store_changed(new)
        self.ledger.wake_readers()
        if not self._loaded:
            return  # starting: the wait for the store says it in a line of its own
        extra = {"event": "store"}
        if new.state == "available":
            log.warning("the store is available again (%s for %.0f s)", old.state, new.since - old.since, extra=extra)
        elif new.state == "rewound":
            log.error("the store lost acknowledged history (%s): refusing adds until it is repaired", new.reason,
                      extra=extra)  # fmt: skip
        else:
            log.error("the store is unavailable (%s): refusing adds until it is back", new.reason, extra=extra)

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

    def _warn_if_exposed(self) -> None:
        config = self.config
        if config.unix is not None or not exposed(config.host):
            return
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

    async def start(self) -> None:
        """Listen (health endpoints answer at once), then open the store, waiting for it if it is away."""
        config = self.config
        self._warn_if_exposed()
        self._plan_connections()
        admission = Admission(
            token=config.token,
            gate=self.gate,
            max_connections=self.max_connections,
            open_connections=lambda: self.handler.open_connections,
            metrics=self.metrics,
            ready=self.not_ready,
            serving=lambda: self._loaded and bool(self.view.id),
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
        if config.unix is not None:
            self._server = await unix_serve(self.handler, config.unix, **options)
        else:
            # asyncio's default backlog of 100 overflows in a join storm, and a dropped
            # handshake waits a whole second for TCP to retry it.
            self._server = await serve(self.handler, config.host, config.port, backlog=BACKLOG, **options)
        try:
            await self._wait_for_store(self._open)
        except BaseException:
            self._server.close()
            await self._server.wait_closed()
            raise
        self._loaded = True
        self._own(self.liveness.run(lambda: self.server.connections, self.gate))
        log.info(
            "serving on %s (store: %s, ledger %s, total=%d, seq=%d)",
            self.url, shown(self.config.db), self.view.id, self.view.total, self.view.seq,
        )  # fmt: skip

    async def _open(self) -> None:
        # A cluster loads the shared ledger (with who is online) before the writer starts: a try that fails
        # leaves nothing running, and the next try starts from scratch.
        if self.cluster is not None:
            await self.cluster.start()
        await self.ledger.start()

    async def _wait_for_store(self, open_store: Callable[[], Awaitable[None]]) -> None:
        """Open the store; while it does not answer, say so once and try again (until ``store_timeout``)."""
        loop = asyncio.get_running_loop()
        config = self.config
        deadline = None if config.store_timeout is None else loop.time() + config.store_timeout
        waited = False
        while True:
            try:
                await open_store()
                break
            except StoreUnavailable as exc:
                self._waiting = str(exc)
                if not waited:
                    log.warning("waiting for the store: %s (ctrl+c stops)", exc, extra={"event": "store"})
                    waited = True
                if deadline is not None and loop.time() >= deadline:
                    raise StoreTimeout(f"the store did not answer within {config.store_timeout:g} s ({exc})") from None
                await asyncio.sleep(config.store_retry)
        if waited:
            log.warning("the store answered", extra={"event": "store"})

    def _own(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Close every connection with 1001, then store everything already received."""
        for task in [*self._tasks, *self.claims.tasks]:
            task.cancel()
        if self._server is not None:
            self._server.close(reason="server stopped")
            await self._server.wait_closed()
        if self._loaded:
            if self.cluster is not None:
                await self.cluster.stop()
            await self.ledger.stop()
        log.info("stopped (total=%d, seq=%d)", self.view.total, self.view.seq)

    async def run(self) -> None:
        """Serve until SIGINT, SIGTERM or (if configured) idleness; then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Before starting: a signal that arrives as soon as "serving on" is logged must stop cleanly too.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        starting = asyncio.ensure_future(self.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while waiting for the store
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return
        stopped.cancel()
        starting.result()
        tune_garbage_collector()
        try:
            if self.config.exit_when_idle is None:
                await stop.wait()
            else:
                await self._wait_until_idle(stop, self.config.exit_when_idle)
        finally:
            await self.stop()

    async def _wait_until_idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Return once no connection has been open for ``seconds`` (or ``stop`` is set)."""
        handler = self.handler
        while not stop.is_set():
            changed = handler.changed()
            if handler.open_connections:
                await _first(stop.wait(), changed)
                continue
            try:
                async with asyncio.timeout(seconds):
                    await _first(stop.wait(), changed)
            except TimeoutError:
                log.info("no connection for %.0f s; exiting", seconds)
                return


# Young objects a collection waits for (CPython's default is 700). A commit makes and drops a few objects
# for each of up to a thousand adds at once; at 700 the collector ran in the middle of nearly every one,
# walking objects a moment from being freed anyway: 6% of the server's CPU at capacity, 1% at this.
YOUNG_OBJECTS_PER_COLLECTION = 10_000


def tune_garbage_collector() -> None:
    """Once started, for a server process of its own (not a test's in-process server): what it holds now
    (modules, the loaded ledger) is kept out of every later collection, and young objects are collected
    less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, middle, old)


class StoreTimeout(Exception):
    """The store did not answer at start within ``--store-timeout``."""


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until the first of ``waits`` is done; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
