"""What the dashboard knows: who I am, who is here, the total, and what is pending.

One object, owned by the app and fed by the connection's messages; widgets
render from it and keep no copy of their own. Nothing here draws or connects.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable

from server.protocol import HISTORY_POINTS, ClientInfo, HistoryPoint, Presence, Update, Welcome
from tui.pending import Pending

__all__ = ["Model"]


class Model:
    def __init__(self, name: str, pending: Pending | None = None) -> None:
        self.name = name
        self.pending = pending if pending is not None else Pending()
        self.you: str | None = None
        self.clients: dict[str, ClientInfo] = {}
        self.total: int | None = None
        self.seq = 0
        self.history: deque[HistoryPoint] = deque(maxlen=HISTORY_POINTS)

    def welcome(self, welcome: Welcome) -> None:
        """Replace everything with the server's snapshot."""
        self.you = welcome.you
        self.clients = {client.id: client for client in welcome.clients}
        self.total, self.seq = welcome.total, welcome.seq
        self.history.clear()
        self.history.extend(welcome.history)

    def apply(self, updates: Iterable[Update]) -> set[str]:
        """Take updates in seq order; returns the ids of the clients whose ``added`` changed."""
        credits: Counter[str] = Counter()
        for update in updates:
            self.total, self.seq = update.total, update.seq
            self.history.append(HistoryPoint(update.seq, update.at, update.total))
            credits[update.client] += update.amount
        changed = set()
        for client_id, amount in credits.items():
            client = self.clients.get(client_id)
            if client is not None and amount:
                self.clients[client_id] = ClientInfo(
                    client.id, client.name, client.address, client.since, client.added + amount
                )
                changed.add(client_id)
        return changed

    def presence(self, presence: Presence) -> str | None:
        """Take a join, leave or rename; returns the client's name before it (None if unknown)."""
        client = presence.client
        before = self.clients.get(client.id)
        if presence.event == "left":
            self.clients.pop(client.id, None)
        else:
            self.clients[client.id] = client
        return None if before is None else before.name
