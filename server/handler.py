"""Dispatch, counting and cleanup: what happens around every connection's session.

Which session serves a connection depends on what it asked for: ``tally.v1``
(as a subprotocol, or by path) gets a :class:`~server.session.DashboardSession`;
anything else is the original blog client and gets a
:class:`~server.session.BlogSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from server.limits import Flooding
from server.protocol import SUBPROTOCOL
from server.session import BlogSession, DashboardSession, Room, Session

__all__ = ["TALLY_PATH", "Handler", "speaks_tally"]

log = logging.getLogger("tally.server")

TALLY_PATH = f"/{SUBPROTOCOL}"


def speaks_tally(connection: ServerConnection) -> bool:
    """True for tally.v1: asked for as a subprotocol, or by path.

    The path is for generic clients that cannot set a subprotocol, such as
    ``python -m websockets ws://127.0.0.1:8765/tally.v1``.
    """
    request = connection.request
    return connection.subprotocol == SUBPROTOCOL or (request is not None and request.path == TALLY_PATH)


async def close_draining(connection: ServerConnection, code: int, reason: str) -> None:
    """Close, discarding what the peer still sends meanwhile.

    A flooder's unread frames fill the receive queue, websockets stops
    reading, and the peer's close reply would sit unread until close_timeout.
    """

    async def discard() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await connection.recv()

    draining = asyncio.create_task(discard())
    try:
        await connection.close(code, reason)
    finally:
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining


class Handler:
    """websockets' handler: one call per connection; everything shared is in the room."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.open_connections = 0

    async def __call__(self, connection: ServerConnection) -> None:
        kind = DashboardSession if speaks_tally(connection) else BlogSession
        session: Session = kind(self.room, connection, self._new_client_id())
        self.open_connections += 1
        try:
            await session.serve()
        except ConnectionClosed:
            pass
        except Flooding:
            log.warning("close  %s from %s: kept flooding after rate_limited", session.client_id, session.address)
            await close_draining(connection, CloseCode.POLICY_VIOLATION, "flooding")
        finally:
            self.open_connections -= 1
            self.room.fanout.unsubscribe(connection)
            left = self.room.roster.leave(session.client_id)
            if left is not None:
                self.room.fanout.publish(left, soon=False)
                log.info("leave  %s %r from %s", session.client_id, left.client.name, session.address)

    def _new_client_id(self) -> str:
        while (client_id := secrets.token_hex(4)) in self.room.roster:
            pass
        return client_id
