"""What the dashboard knows: who I am, who is here, the total, and which of my adds ctrl+z can take back.

One object, owned by the app and fed by the link's events; widgets render
from it and keep no copy of their own. Nothing here draws or connects. The
adds not yet acknowledged are the outbox's (:mod:`tui.outbox`), not the model's.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable

from tally.server.protocol import (
    HISTORY_POINTS,
    ClientInfo,
    ClientsPage,
    HistoryPoint,
    LimitsInfo,
    Online,
    Presence,
    Update,
    Welcome,
    sort_key,
)
from tally.server.protocol.messages import SortKey
from tally.tui.series import WINDOWS, Series
from tally.tui.undo import UndoStack

__all__ = ["Model"]


class Model:
    def __init__(self, name: str) -> None:
        self.name = name
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
        self.undo = UndoStack()  # what ctrl+z and ctrl+y reach
        # The total over the window the chart shows (the last minute, hour or day).
        self.series = Series(WINDOWS["minute"])
        # Me as others see me: in a large room the welcome lists nobody, me included.
        self.me: ClientInfo | None = None

    def welcome(self, welcome: Welcome) -> None:
        """Replace everything with the server's snapshot."""
        if self.ledger and (welcome.ledger, welcome.epoch) != (self.ledger, self.epoch):
            self.undo.clear()  # undo reaches only into the ledger (and epoch) it was typed for
        self.you, self.session = welcome.you, welcome.session
        self.ledger, self.epoch = welcome.ledger, welcome.epoch
        self.limits, self.server_version = welcome.limits, welcome.server.version
        self.clients = {client.id: client for client in welcome.clients}
        self.online, self.live = max(welcome.online, len(welcome.clients)), welcome.live
        self.total, self.seq = welcome.total, welcome.seq
        self.history.clear()
        self.history.extend(welcome.history)
        mine = self.clients.get(welcome.you)
        self.me = mine or ClientInfo(welcome.you, self.name, time.time(), welcome.added, None, "")
        # Until the server answers a history request, the chart starts from what the welcome has.
        self.series = Series(self.series.window)
        # No recent history: the total has been what it is since before any window (at 0, "ever").
        for point in welcome.history or (HistoryPoint(welcome.seq, 0.0, welcome.total),):
            self.series.add(point)

    def choose_window(self, name: str) -> None:
        """Chart another window: it starts from what is known, until the server's history for it arrives."""
        series = Series(WINDOWS[name])
        for point in self.series.points or self.history:
            series.add(point)
        self.series = series

    def history_arrived(self, points: Iterable[HistoryPoint], now: float) -> None:
        self.series.replace(points, now)

    def apply(self, updates: Iterable[Update]) -> set[str]:
        """Take updates in seq order; returns the ids of the clients whose ``added`` changed."""
        credits: Counter[str] = Counter()
        for update in updates:
            self.total, self.seq = update.total, update.seq
            point = HistoryPoint(update.seq, update.at, update.total)
            self.history.append(point)
            self.series.add(point)
            credits[update.client] += update.amount
        changed = set()
        for client_id, amount in credits.items():
            client = self.clients.get(client_id)
            if client is not None and amount:
                self.clients[client_id] = ClientInfo(
                    client.id, client.name, client.since, client.added + amount, client.address, client.tag
                )
                changed.add(client_id)
        me = self.me
        if me is not None and credits.get(me.id):
            self.me = ClientInfo(me.id, me.name, me.since, me.added + credits[me.id], me.address, me.tag)
        return changed

    def shared_names(self) -> set[str]:
        """Names that two or more sessions go by among the people known: the log shows their tags."""
        tags: dict[str, set[str]] = {}
        for client in self.clients.values():
            tags.setdefault(client.name, set()).add(client.tag)
        return {name for name, seen in tags.items() if len(seen) > 1}

    def presence(self, presence: Presence) -> str | None:
        """Take a join, leave or rename; returns the client's name before it (None if unknown)."""
        client = presence.client
        before = self.clients.get(client.id)
        if presence.event == "left":
            self.clients.pop(client.id, None)
        else:
            self.clients[client.id] = client
            if client.id == self.you:
                self.me = client
        return None if before is None else before.name

    def page(
        self, *, offset: int, limit: int, sort: SortKey, descending: bool, filter: str
    ) -> tuple[int, list[ClientInfo]]:
        """In a live room, a page of everyone, as the server would send it: how many match, and ``limit`` of them.

        Sorted like the server's pages, so a room that grows past live keeps its order.
        """
        people: Iterable[ClientInfo] = self.clients.values()
        if filter:
            needle = filter.casefold()
            people = [info for info in people if needle in info.name.casefold()]
        ordered = sorted(people, key=sort_key(sort), reverse=descending)
        return len(ordered), ordered[offset : offset + limit]

    def page_arrived(self, page: ClientsPage) -> None:
        """Take a page the server sent: in a large room, the people shown; live again, everyone."""
        for client in page.clients:
            if client.id == self.you:
                self.me = client
        if self.live and page.offset == 0 and len(page.clients) == page.total:
            self.clients = {client.id: client for client in page.clients}
        elif not self.live:
            # Only who is shown is kept: updates credit them until the next page replaces them.
            self.clients = {client.id: client for client in page.clients}

    def rename(self, name: str) -> None:
        self.name = name
        if self.me is not None:
            me = self.me
            self.me = ClientInfo(me.id, name, me.since, me.added, me.address, me.tag)

    def count(self, online: Online) -> bool:
        """Take the count; True if the room just became live (the whole list must be fetched)."""
        became_live = online.live and not self.live
        self.online, self.live = online.count, online.live
        return became_live

    @property
    def stale(self) -> bool:
        """True until the first welcome: what is shown is not the server's."""
        return self.total is None
