"""What the dashboard knows: who I am, who is here, the total, and what is pending.

One object, owned by the app and fed by the connection's messages; widgets
render from it and keep no copy of their own. Nothing here draws or connects.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from server.protocol import HISTORY_POINTS, ClientInfo, HistoryPoint, LimitsInfo, Online, Presence, Update, Welcome
from tui.pending import Pending, PendingAdd

__all__ = ["Mine", "Model"]

# How many of my own acknowledged adds ctrl+z can reach back to.
UNDO_DEPTH = 100


@dataclass
class Mine:
    """One of my adds the server applied: what ctrl+z can take back."""

    op: str
    amount: int
    seq: int
    undone: bool = False


class Model:
    def __init__(self, name: str, pending: Pending | None = None) -> None:
        self.name = name
        self.pending = pending if pending is not None else Pending()
        self.you: str | None = None
        self.session = ""
        # Everyone, while the room is live; otherwise only who the last page showed.
        self.clients: dict[str, ClientInfo] = {}
        self.online = 0
        self.live = True
        self.total: int | None = None
        self.seq = 0
        self.ledger = ""
        self.epoch = 0
        self.limits: LimitsInfo | None = None
        self.server_version = ""
        self.history: deque[HistoryPoint] = deque(maxlen=HISTORY_POINTS)
        self.mine: deque[Mine] = deque(maxlen=UNDO_DEPTH)

    def welcome(self, welcome: Welcome) -> None:
        """Replace everything with the server's snapshot."""
        if welcome.ledger != self.ledger:
            self.mine.clear()  # undo reaches only into the ledger it was typed for
        self.you, self.session = welcome.you, welcome.session
        self.ledger, self.epoch = welcome.ledger, welcome.epoch
        self.limits, self.server_version = welcome.limits, welcome.server.version
        self.clients = {client.id: client for client in welcome.clients}
        self.online, self.live = max(welcome.online, len(welcome.clients)), welcome.live
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
            if update.undoes is not None:
                for mine in self.mine:
                    if mine.seq == update.undoes:
                        mine.undone = True
        changed = set()
        for client_id, amount in credits.items():
            client = self.clients.get(client_id)
            if client is not None and amount:
                self.clients[client_id] = ClientInfo(
                    client.id, client.name, client.since, client.added + amount, client.address, client.tag
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

    def count(self, online: Online) -> bool:
        """Take the count; True if the room just became live (the whole list must be fetched)."""
        became_live = online.live and not self.live
        self.online, self.live = online.count, online.live
        return became_live

    def acknowledged(self, add: PendingAdd, seq: int) -> None:
        self.mine.append(Mine(add.op, add.amount, seq))

    def undoable(self) -> Mine | None:
        """My latest applied add not yet taken back (an undo can itself be undone)."""
        return next((mine for mine in reversed(self.mine) if not mine.undone), None)

    @property
    def stale(self) -> bool:
        """True until the first welcome: what is shown is not the server's."""
        return self.total is None
