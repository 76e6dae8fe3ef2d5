"""Dispatch, counting and cleanup: what happens around every connection's session.

Which session serves a connection depends on what it asked for: ``tally.v2``
or ``tally.v1`` (as a subprotocol, or by path) gets a
:class:`~server.session.DashboardSession`; anything else is the original blog
client and gets a :class:`~server.session.BlogSession`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tally.server.connection import TallyConnection
from tally.server.protocol import SUBPROTOCOL_V1, SUBPROTOCOL_V2
from tally.server.session import BlogSession, DashboardSession, Room, Session

__all__ = ["Handler", "protocol_version"]

log = logging.getLogger("tally.server")

VERSIONS = {SUBPROTOCOL_V2: 2, SUBPROTOCOL_V1: 1}
PROTOCOL_LABELS = {2: "tally.v2", 1: "tally.v1", 0: "bare"}


def protocol_version(connection: ServerConnection) -> int:
    """2 or 1 for tally.v2 or tally.v1 (asked for as a subprotocol, or by path); 0 for the bare-number path.

    The path is for generic clients that cannot set a subprotocol, such as
    ``python -m websockets ws://127.0.0.1:8765/tally.v2``.
    """
    if connection.subprotocol is not None:
        return VERSIONS.get(connection.subprotocol, 0)
    request = connection.request
    return 0 if request is None else VERSIONS.get(request.path.lstrip("/"), 0)


class Handler:
    """websockets' handler: one call per connection; everything shared is in the room."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.open_connections = 0
        self._changed = asyncio.Event()
        # Unique across a cluster: the server's id, then a counter.
        self._ids = (f"{room.server.id}.{n:x}" for n in itertools.count(1))

    def changed(self) -> Awaitable[object]:
        """Done when the number of open connections next changes (for a server that exits when idle)."""
        self._changed.clear()
        return self._changed.wait()

    async def __call__(self, connection: ServerConnection) -> None:
        version = protocol_version(connection)
        if isinstance(connection, TallyConnection):
            connection.version = version
        client_id = next(self._ids)
        session: Session = (
            DashboardSession(self.room, connection, client_id, version)
            if version
            else BlogSession(self.room, connection, client_id)
        )
        self.open_connections += 1
        self._changed.set()
        gauge = self.room.metrics.open_for(PROTOCOL_LABELS[version])
        gauge.inc()
        try:
            await session.serve()
        except ConnectionClosed:
            pass
        finally:
            self.open_connections -= 1
            self._changed.set()
            gauge.dec()
            self.room.fanout.unsubscribe(connection)
            # Its adds first, then its leave: nobody sees an add after its author left.
            await session.settle()
            await session.leave()
            reason = getattr(connection, "closing_reason", "")
            if reason:
                log.warning("drop   %s from %s: %s", client_id, session.address, reason,
                            extra={"event": "drop", "client": client_id, "address": session.address})  # fmt: skip
