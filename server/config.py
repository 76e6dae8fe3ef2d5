"""The server's settings, and what they mean for sockets: TLS, origins, the open-file limit, exposure."""

from __future__ import annotations

import contextlib
import resource
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from websockets.asyncio.server import ServerConnection
from websockets.typing import Origin, Subprotocol

from tally.server.ledger import MAX_ADDS_PER_COMMIT
from tally.server.limits import Limits
from tally.server.protocol import SUBPROTOCOLS
from tally.server.protocol.hosts import is_loopback_host

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerConfig",
    "default_db_path",
    "exposed",
    "file_limit",
    "origins",
    "select_subprotocol",
    "tls_context",
]

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
    return not is_loopback_host(host)


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
    # With a Redis store: acknowledge an add only once this many replicas have it (WAIT), each
    # within redis_replica_timeout seconds (else the add is refused unavailable, never acknowledged).
    redis_replicas: int = 0
    redis_replica_timeout: float = 1.0
    # With a shared store: this machine's record of the adds its servers acknowledged (server/witness.py).
    witness: str | None = None
    # Give up when the store does not answer at start within this many seconds (None: wait for it).
    store_timeout: float | None = None
    # How long to wait between tries while the store does not answer at start.
    store_retry: float = 1.0
    # Adds committed in one transaction at most (group commit).
    max_batch: int = MAX_ADDS_PER_COMMIT
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
