"""Where the clients table's rows come from: the model in a live room, the server's pages in a large one.

In a large room the dashboard knows only the count; the table asks for the
rows in view and the pager fetches a block around them (one request at a
time, the latest wish served next), answers at once from what it has, and
refetches a block that has grown old. Nothing here draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tally.server.protocol import PAGE_MAX, ClientInfo, ClientsPage
from tally.server.protocol.messages import SortKey
from tally.tui.model import Model

__all__ = ["Pager", "Rows", "View"]

# A block older than this is fetched again (the room moves on: people come, go and add).
STALE_AFTER = 2.0
# An answer this late is given up on, and the next wish asks again.
GIVE_UP_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class View:
    """The rows the clients table shows: ``limit`` from ``offset`` in this order, of those whose name has ``filter``."""

    offset: int
    limit: int
    sort: SortKey
    descending: bool
    filter: str


Rows = tuple[int, list[ClientInfo | None]]  # how many match, and the rows in view (None: not here yet)
Request = Callable[[int, int, View], str | None]  # offset, limit, view -> request id, None if not connected


@dataclass(frozen=True, slots=True)
class _Block:
    key: tuple[str, bool, str]
    offset: int
    total: int
    clients: tuple[ClientInfo, ...]
    fetched_at: float


@dataclass(frozen=True, slots=True)
class _Asked:
    id: str
    key: tuple[str, bool, str]
    sent_at: float


def _key(view: View) -> tuple[str, bool, str]:
    return (view.sort, view.descending, view.filter)


class Pager:
    def __init__(self, model: Model, request: Request) -> None:
        self.model = model
        self.request = request
        self.block: _Block | None = None
        self.asked: _Asked | None = None
        self.wanted: View | None = None

    def want(self, view: View, now: float) -> Rows:
        """The rows of ``view`` as far as known now; in a large room, fetches what is missing or old."""
        self.wanted = view
        if self.model.live:
            total, clients = self.model.page(
                offset=view.offset, limit=view.limit, sort=view.sort, descending=view.descending, filter=view.filter
            )
            return total, list(clients)
        rows = self._rows(view)
        block = self.block
        fresh = block is not None and _key(view) == block.key and now - block.fetched_at < STALE_AFTER
        if not (fresh and None not in rows[1]):
            self._ask(view, now)
        return rows

    def arrived(self, page: ClientsPage, now: float) -> tuple[View, Rows] | None:
        """Take the server's answer; returns the rows to show if it answers what is wanted now."""
        asked = self.asked
        if asked is None or page.id != asked.id:
            return None  # an answer given up on, or someone else's request (the whole list)
        self.asked = None
        self.block = _Block(asked.key, page.offset, page.total, page.clients, now)
        view = self.wanted
        if view is None:
            return None
        rows = self._rows(view)
        if _key(view) != asked.key or None in rows[1]:
            self._ask(view, now)  # the table moved on while we waited
        return view, rows

    def forget(self) -> None:
        """A new connection: nothing cached or asked is valid any more."""
        self.block = self.asked = None

    def _rows(self, view: View) -> Rows:
        block = self.block
        if block is None or block.key != _key(view):
            estimate = self.model.online if not view.filter else view.limit
            return estimate, [None] * max(0, min(view.limit, estimate - view.offset))
        rows: list[ClientInfo | None] = []
        for index in range(view.offset, min(view.offset + view.limit, block.total)):
            inside = block.offset <= index < block.offset + len(block.clients)
            rows.append(block.clients[index - block.offset] if inside else None)
        return block.total, rows

    def _ask(self, view: View, now: float) -> None:
        if self.asked is not None and now - self.asked.sent_at < GIVE_UP_AFTER:
            return  # one at a time: the answer serves the latest wish, or asks again
        # A block around the view, so that small scrolls are answered at once.
        offset = max(0, view.offset - view.limit)
        limit = min(PAGE_MAX, view.limit * 3)
        request_id = self.request(offset, limit, view)
        self.asked = None if request_id is None else _Asked(request_id, _key(view), now)
