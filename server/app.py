"""Wiring: build the pieces, serve, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Origin, Subprotocol

from server.access import Admission
from server.fanout import Fanout
from server.handler import Handler
from server.ledger import Ledger
from server.limits import Limits
from server.presence import Roster
from server.protocol import SUBPROTOCOL, Update, Welcome
from server.session import Room
from server.state import Record
from server.store import Store, open_store

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerConfig", "TallyServer", "default_db_path"]

log = logging.getLogger("tally.server")
# Pending connections the kernel may queue for us (it caps this at net.core.somaxconn).
BACKLOG = 4096

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Speak tally.v1 when asked; otherwise carry on without a subprotocol.

    websockets refuses a client that offers none when the server lists one;
    the original blog client offers none and must keep working.
    """
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # A path, ":memory:", or a store URL (memory://, sqlite:///path).
    db: str = field(default_factory=lambda: str(default_db_path()))
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
    # A silently dead peer is dropped within ping_interval + ping_timeout +
    # close_timeout (25 s): after a missed pong, websockets still waits
    # close_timeout for a closing handshake the dead peer will never answer.
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
        self.roster = Roster()
        self.fanout = Fanout(self._current_welcome, max_buffer=config.limits.max_write_buffer)
        self.ledger = Ledger(store or open_store(config.db), self._publish)
        self.handler = Handler(Room(self.ledger, self.roster, self.fanout, config.limits))
        self._server: Server | None = None

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
        scheme = "wss" if self.config.tls_cert else "ws"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        config = self.config
        if exposed(config.host) and config.token is None:
            log.warning(
                "LISTENING ON %s WITHOUT A TOKEN: anyone who can reach this address can add to the total. "
                "Set --token (or TALLY_TOKEN) unless this network is trusted.",
                config.host,
            )
        await self.ledger.start()
        admission = Admission(
            token=config.token,
            max_connections=config.limits.max_connections,
            open_connections=lambda: self.handler.open_connections,
        )
        try:
            self._server = await serve(
                self.handler,
                config.host,
                config.port,
                select_subprotocol=select_subprotocol,
                process_request=admission,
                origins=origins(config.allow_origins),
                compression="deflate" if config.compression else None,
                ssl=tls_context(config.tls_cert, config.tls_key),
                max_size=config.limits.max_message_bytes,
                ping_interval=self.config.ping_interval,
                ping_timeout=self.config.ping_timeout,
                close_timeout=self.config.close_timeout,
                # asyncio's default of 100 overflows in a join storm, and a dropped
                # handshake waits a whole second for TCP to retry it.
                backlog=BACKLOG,
            )
        except BaseException:
            await self.ledger.stop()
            raise
        log.info(
            "serving on %s (store: %s, total=%d, seq=%d)", self.url, self.config.db, self.ledger.total, self.ledger.seq
        )

    async def __aenter__(self) -> TallyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Close every connection with 1001, then store everything already received."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.ledger.stop()
        log.info("stopped (total=%d, seq=%d)", self.ledger.total, self.ledger.seq)

    async def run(self) -> None:
        """Serve until SIGINT, SIGTERM or (if configured) idleness; then stop cleanly."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
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

    def _current_welcome(self) -> Welcome:
        """Everything a joining client needs, as of now (``you`` is filled in per client)."""
        ledger = self.ledger
        return Welcome(
            you="", total=ledger.total, seq=ledger.seq, clients=self.roster.clients(), history=tuple(ledger.history)
        )

    def _publish(self, records: Sequence[Record]) -> None:
        for record in records:
            self.roster.credit(record.client, record.amount)
            self.fanout.publish(
                Update(
                    seq=record.seq,
                    total=record.total,
                    amount=record.amount,
                    name=record.name,
                    client=record.client,
                    op=record.op,
                    at=record.at,
                )
            )
