"""Who is connected, and the events to send when that changes."""

from __future__ import annotations

import dataclasses
import time

from server.protocol import ClientInfo, Presence

__all__ = ["Roster"]


class Roster:
    """The clients connected to this server, by connection id.

    Each change returns the :class:`Presence` event to broadcast; a change is
    one event, never the full list, so a join costs the same at 2,000 clients
    as at 2.
    """

    def __init__(self) -> None:
        self._clients: dict[str, ClientInfo] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __getitem__(self, client_id: str) -> ClientInfo:
        return self._clients[client_id]

    def clients(self) -> tuple[ClientInfo, ...]:
        return tuple(self._clients.values())

    def join(self, client_id: str, name: str, address: str) -> Presence:
        info = ClientInfo(id=client_id, name=name, address=address, since=time.time(), added=0)
        self._clients[client_id] = info
        return Presence(event="joined", client=info)

    def leave(self, client_id: str) -> Presence | None:
        info = self._clients.pop(client_id, None)
        return None if info is None else Presence(event="left", client=info)

    def rename(self, client_id: str, name: str) -> Presence:
        info = dataclasses.replace(self._clients[client_id], name=name)
        self._clients[client_id] = info
        return Presence(event="renamed", client=info)

    def credit(self, client_id: str, amount: int) -> None:
        """Count ``amount`` towards what the client has added (if it is still here)."""
        info = self._clients.get(client_id)
        if info is not None:
            # Once per add: built directly, as dataclasses.replace is several times slower.
            self._clients[client_id] = ClientInfo(info.id, info.name, info.address, info.since, info.added + amount)
