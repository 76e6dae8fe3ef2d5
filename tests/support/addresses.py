"""Clients from other loopback addresses (127.0.0.2, …), to test limits that are per address."""

from __future__ import annotations

import socket
from typing import Any

from tally.server.app import TallyServer
from tally.server.connection import TallyConnection
from tests.support.peers import Peer

__all__ = ["bound_socket", "peer_from", "server_side"]


def bound_socket(server: TallyServer, host: str) -> socket.socket:
    """A TCP socket from ``host`` (a loopback address), connected to ``server``."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.connect(("127.0.0.1", server.port))
    return sock


async def peer_from(server: TallyServer, host: str, name: str | None = None, **options: Any) -> Peer:
    """A peer connected from ``host``; it says hello if given a ``name``."""
    sock = bound_socket(server, host)
    if name is None:
        return await Peer.connect(server.url, sock=sock, **options)
    return await Peer.join(server.url, name, sock=sock, **options)


def server_side(server: TallyServer, peer: Peer) -> TallyConnection:
    """The server's end of ``peer``'s connection."""
    local = peer.connection.local_address
    for connection in server.server.connections:
        if connection.remote_address == local and isinstance(connection, TallyConnection):
            return connection
    raise LookupError(f"no server connection from {local}")
