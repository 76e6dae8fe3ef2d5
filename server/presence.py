"""Who is online, and what everyone is told when that changes.

The roster holds every person online (watchers are counted apart and never
listed). While the room is small it is *live*: every join, leave and rename
is sent to everyone, as it always was. Past ``live_presence`` people it is
not: dashboards get the count, coalesced, and ask for the page of the list
they are looking at (:meth:`Roster.page`). It turns live again below three
quarters of the bound, so a room hovering at the bound does not flap. A join
storm of N dashboards thus costs each dashboard O(1) bytes per flush instead
of O(N).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator

from tally.server.protocol import ClientInfo, Presence, sort_key
from tally.server.protocol.messages import SortKey

__all__ = ["Announcer", "LocalPresence", "Roster"]

# A sorted view is rebuilt at most this often; pages may lag changes by as much.
VIEW_MAX_AGE = 1.0


class Roster:
    """The people online on this server (or, in a cluster, on every server), by connection id."""

    def __init__(self, *, live_presence: int = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self.live_presence = live_presence
        self.clock = clock
        self.live = True
        self.watchers = 0
        self._people: dict[str, ClientInfo] = {}
        self._views: dict[tuple[SortKey, bool], tuple[float, list[ClientInfo]]] = {}

    def __len__(self) -> int:
        return len(self._people)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._people

    def __getitem__(self, client_id: str) -> ClientInfo:
        return self._people[client_id]

    def __iter__(self) -> Iterator[ClientInfo]:
        return iter(self._people.values())

    def get(self, client_id: str) -> ClientInfo | None:
        return self._people.get(client_id)

    def clients(self, limit: int | None = None) -> tuple[ClientInfo, ...]:
        """Everyone, in the order they joined (the first ``limit`` of them)."""
        people = self._people.values()
        if limit is None or limit >= len(self._people):
            return tuple(people)
        return tuple(info for info, _ in zip(people, range(limit), strict=False))

    def reset(self, people: Iterable[ClientInfo]) -> None:
        """Replace everyone (a cluster's server loading who is online on every server)."""
        self._people = {info.id: info for info in people}
        self._views.clear()
        self._changed()

    def join(self, info: ClientInfo) -> Presence:
        self._people[info.id] = info
        self._changed()
        return Presence(event="joined", client=info)

    def leave(self, client_id: str) -> Presence | None:
        info = self._people.pop(client_id, None)
        if info is None:
            return None
        self._changed()
        return Presence(event="left", client=info)

    def rename(self, client_id: str, name: str) -> Presence:
        old = self._people[client_id]
        info = ClientInfo(old.id, name, old.since, old.added, old.address, old.tag)
        self._people[client_id] = info
        self._views.clear()
        return Presence(event="renamed", client=info)

    def credit(self, client_id: str, added: int) -> None:
        """Set what the client's session has added in all (if the client is still here)."""
        old = self._people.get(client_id)
        if old is not None and old.added != added:
            # Once per add: built directly, as dataclasses.replace is several times slower.
            self._people[client_id] = ClientInfo(old.id, old.name, old.since, added, old.address, old.tag)

    def _changed(self) -> None:
        count = len(self._people)
        if self.live and count > self.live_presence:
            self.live = False
        elif not self.live and count <= self.live_presence * 3 // 4:
            self.live = True

    def page(
        self, *, offset: int, limit: int, sort: SortKey, descending: bool, filter: str
    ) -> tuple[int, tuple[ClientInfo, ...]]:
        """How many people match ``filter`` (in their name, any case), and ``limit`` of them from ``offset``."""
        view = self._view(sort, descending)
        if filter:
            needle = filter.casefold()
            view = [info for info in view if needle in info.name.casefold()]
        return len(view), tuple(view[offset : offset + limit])

    def _view(self, sort: SortKey, descending: bool) -> list[ClientInfo]:
        now = self.clock()
        built = self._views.get((sort, descending))
        # A small room sorts in no time: always fresh. A large one reuses a view for a moment.
        if built is None or self.live or now - built[0] > VIEW_MAX_AGE:
            built = (now, sorted(self._people.values(), key=sort_key(sort), reverse=descending))
            self._views[sort, descending] = built
        return built[1]


class Announcer(ABC):
    """How joins, leaves and renames reach everyone: at once on one server, through the store in a cluster.

    ``publish`` sends a presence event to every dashboard (it may wait a moment for company).
    """

    def __init__(self, roster: Roster, publish: Callable[[Presence], None]) -> None:
        self.roster = roster
        self.publish = publish

    @abstractmethod
    async def join(self, info: ClientInfo) -> None: ...

    @abstractmethod
    async def leave(self, client_id: str) -> ClientInfo | None: ...

    @abstractmethod
    async def rename(self, client_id: str, name: str) -> None: ...


class LocalPresence(Announcer):
    """One server: the roster changes at once, and the fan-out tells everyone (presence may wait for company)."""

    async def join(self, info: ClientInfo) -> None:
        self.publish(self.roster.join(info))

    async def leave(self, client_id: str) -> ClientInfo | None:
        left = self.roster.leave(client_id)
        if left is None:
            return None
        self.publish(left)
        return left.client

    async def rename(self, client_id: str, name: str) -> None:
        self.publish(self.roster.rename(client_id, name))
