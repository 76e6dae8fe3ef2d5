"""Who is here: a page of people at a time, you pinned on top, sorted and filtered.

The table never holds more rows than it shows: with ten thousand people it
asks for the page in view (:class:`ClientsTable.PageWanted`) as it scrolls,
and the app answers from the model (a small, live room) or from the server
(a large one). Columns shrink to the width; a number too wide for its column
is shown in a compact form (55.9B), never cut, and exactly on the detail line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable

from tally.server.protocol import ClientInfo
from tally.server.protocol.messages import SortKey
from tally.tui.numbers import fit
from tally.tui.pager import View
from tally.tui.text import duration, plain_text

__all__ = ["ClientsTable"]

# Most telling first: the address goes first (below 90 columns), then "since" (names would be cut).

TITLES = {"name": "Name", "added": "Added", "since": "Since", "address": "Address"}
# A changed list (updates, joins) is redrawn at most this often.
REDRAW_EVERY = 1.0
WHEEL_ROWS = 3


def since_label(timestamp: float, now: float) -> str:
    """The clock time someone came, or the date if not today."""
    same_day = time.localtime(timestamp)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M" if same_day else "%d %b", time.localtime(timestamp))


class ClientsTable(DataTable[Text]):
    """Renders the page it is given (:meth:`show_page`), with ``me`` pinned on top. Cells are ``Text``: never markup."""

    BINDINGS = [
        Binding("n", "sort('name')", "By name", tooltip="Sort people by name (again: reverse)"),
        Binding("a", "sort('added')", "By added", tooltip="Sort people by what they added (again: reverse)"),
        Binding("s", "sort('since')", "By since", tooltip="Sort people by when they came (again: reverse)"),
        Binding("j", "cursor_down", "Down", show=False, tooltip="The next person"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="The person before"),
        Binding("g", "scroll_home", "First", show=False, tooltip="The first person (you)"),
        Binding("G", "scroll_end", "Last", show=False, tooltip="The last person"),
    ]

    @dataclass
    class PageWanted(Message):
        """The table needs the rows of ``view`` (it scrolled, was resized, sorted or filtered)."""

        table: ClientsTable
        view: View

    @dataclass
    class Highlighted(Message):
        """The row under the cursor changed: ``client`` (None for a row still loading)."""

        client: ClientInfo | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.order: SortKey = "name"
        self.descending = False
        self.name_filter = ""
        self.first = 0
        self.total = 0  # people matching the filter (me included)
        self.me: ClientInfo | None = None
        self.shown: list[ClientInfo | None] = []  # the rows, me first; None is a row still loading
        self._redraw: Timer | None = None
        self._widths: tuple[tuple[str, int], ...] = ()
        self.range_text = ""  # which rows are in view, of how many: for the panel's border
        self.ambiguous: set[str] = set()  # names two or more people go by: shown with their tags

    # -- what the app calls ---------------------------------------------------------

    @property
    def view(self) -> View:
        return View(self.first, self.page_rows, self.order, self.descending, self.name_filter)

    @property
    def page_rows(self) -> int:
        """How many rows fit below the header, besides mine."""
        return max(1, self.size.height - 2)

    def want(self) -> None:
        """Ask for the rows in view now."""
        if self._redraw is not None:
            self._redraw.stop()
            self._redraw = None
        # Posted from the table's own queue: a message stops bubbling at its sender, and the sender is
        # whoever runs now (the people panel, when its filter box changes).
        self.call_later(lambda: self.post_message(self.PageWanted(self, self.view)))

    def changed(self) -> None:
        """People or what they added changed: ask again, at most every ``REDRAW_EVERY`` seconds."""
        if self._redraw is None:
            self._redraw = self.set_timer(REDRAW_EVERY, self.want)

    @property
    def settled(self) -> bool:
        """No redraw is waiting."""
        return self._redraw is None

    def show_page(self, total: int, offset: int, clients: Sequence[ClientInfo | None], me: ClientInfo | None) -> None:
        """Show ``clients`` (None: not loaded yet) from ``offset`` of ``total``, and ``me`` on top."""
        if offset != self.first:
            return  # an answer for where the table was before it scrolled on
        if me is not None and self.name_filter and self.name_filter.casefold() not in me.name.casefold():
            me = None  # pinned on top, but not past a filter it fails: the count says who matches
        self.total, self.me = total, me
        rows = [client for client in clients if me is None or client is None or client.id != me.id]
        self.shown = [me, *rows] if me is not None else rows
        self._fill()

    # -- drawing ----------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._fill()
        self.want()

    def _column_widths(self) -> tuple[tuple[str, int], ...]:
        """Name takes what the numbers leave; a number column is as wide as its exact values, unless the
        names would be cut for it (then the numbers go compact, 8 characters at most, and in a narrow
        table "since" goes: the detail line under the table says it)."""
        width = max(self.size.width - 2, 12)  # less the scrollbar's room
        people = [client for client in self.shown if client is not None]
        now = time.time()
        # Room for the header too, with its sort arrow.
        since = max((len(since_label(client.since, now)) for client in people), default=5)
        since = max(since, len(TITLES["since"]) + 2 * (self.order == "since"))
        exact = max((len(f"{client.added:+,}") for client in people), default=5)
        exact = max(exact, len(TITLES["added"]) + 2 * (self.order == "added"))
        address = min(22, max((len(client.address or "") for client in people), default=0))
        address = address if address and width >= 90 else 0
        longest = max((len(client.name) + 6 * (client is self.me) + 5 * (client.name in self.ambiguous)
                       for client in people), default=4)  # fmt: skip
        wanted = min(longest, 16)
        room = width - 2 * (3 + bool(address)) - since - address  # each cell has a space either side
        added = max(5, exact) if room - max(5, exact) >= wanted else 8
        if room - added < wanted and self.order != "since" and not address:
            room += since + 2  # no room for names: "since" goes before they are cut
            return ("name", max(4, room - added)), ("added", added)
        columns = [("name", max(4, room - added)), ("added", added), ("since", since)]
        return tuple([*columns, ("address", address)] if address else columns)

    def _fill(self) -> None:
        widths = self._column_widths()
        cursor = self.cursor_row
        if widths != self._widths:
            self.clear(columns=True)
            for key, width in widths:
                self.add_column(self._header(key), key=key, width=width)
            self._widths = widths
        else:
            self.clear()
        now = time.time()
        for index, client in enumerate(self.shown):
            if client is None:
                self.add_row(*(Text("…", style="dim") for _ in widths), key=f"loading-{index}")
            else:
                self.add_row(*self._cells(client, widths, now), key=client.id)
        if self.shown:
            self.move_cursor(row=min(cursor, len(self.shown) - 1), animate=False, scroll=False)
        self._refresh_titles()
        self.post_message(self.Highlighted(self.highlighted()))  # its numbers may have changed

    def _header(self, key: str) -> Text:
        title = TITLES[key]
        if key == self.order:
            title += " ▼" if self.descending else " ▲"
        return Text(title, justify="right" if key == "added" else "left")

    def _cells(self, client: ClientInfo, widths: tuple[tuple[str, int], ...], now: float) -> list[Text]:
        mine = self.me is not None and client.id == self.me.id
        name = Text(plain_text(client.name, limit=40), style="bold" if mine else "")
        if client.tag and client.name in self.ambiguous:
            name.append(f"#{plain_text(client.tag, limit=8)}", style="dim")
        if mine:
            name.append(" (you)", style="dim")
        cells = {
            "name": name,
            "added": Text(fit(client.added, dict(widths)["added"], signed=True), justify="right"),
            "since": Text(since_label(client.since, now)),
            "address": Text(plain_text(client.address or "", limit=60), overflow="ellipsis"),
        }
        name.truncate(dict(widths)["name"], overflow="ellipsis")
        return [cells[key] for key, _ in widths]

    def _refresh_titles(self) -> None:
        others = max(0, len(self.shown) - (self.me is not None))
        everyone = self.first == 0 and len(self.shown) >= self.total
        rows = f"{self.first + 1:,}" + (f"-{self.first + others:,}" if others > 1 else "")
        self.range_text = "" if everyone else f"{rows} of {self.total:,}"
        if self.name_filter:
            names = "name" if self.total == 1 else "names"
            matches = f"{self.total:,} {names} with “{plain_text(self.name_filter, limit=20)}”"
            self.range_text = f"{matches} · {self.range_text}" if self.range_text else matches

    def detail(self, client: ClientInfo, now: float | None = None, *, width: int = 0) -> str:
        """Everything about one row, exactly (the detail line under the table, and what ``c`` copies).

        With ``width``, the least telling parts (address, how long ago) are left out until it fits.
        """
        now = time.time() if now is None else now
        mine = self.me is not None and client.id == self.me.id
        name = plain_text(client.name, limit=40) + (f"#{plain_text(client.tag, limit=8)}" if client.tag else "")
        parts = [name + (" (you)" if mine else ""), f"{client.added:+,}"]
        parts.append(f"since {time.strftime('%H:%M:%S', time.localtime(client.since))}")
        optional = [f"{duration(now - client.since)} ago"]
        if client.address:
            optional.append(plain_text(client.address, limit=60))
        while optional and width and len(" · ".join(parts + optional)) > width:
            optional.pop()
        return " · ".join(parts + optional)

    # -- moving -----------------------------------------------------------------------

    def highlighted(self) -> ClientInfo | None:
        row = self.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(self.highlighted()))

    def _page_to(self, offset: int) -> None:
        last = max(0, self.total - self.page_rows)
        offset = max(0, min(offset, last))
        if offset != self.first:
            self.first = offset
            self.want()

    def _first_paged_row(self) -> int:
        return 1 if self.me is not None else 0

    def action_cursor_down(self) -> None:
        if self.cursor_row >= len(self.shown) - 1 and self.first + self.page_rows < self.total:
            self._page_to(self.first + 1)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row == self._first_paged_row() and self.first > 0:
            self._page_to(self.first - 1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        self._page_to(self.first + self.page_rows)

    def action_page_up(self) -> None:
        self._page_to(self.first - self.page_rows)

    def action_scroll_home(self) -> None:
        self._page_to(0)
        self.move_cursor(row=0)

    def action_scroll_end(self) -> None:
        self._page_to(self.total)
        self.move_cursor(row=len(self.shown) - 1)

    action_scroll_top = action_scroll_home
    action_scroll_bottom = action_scroll_end

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self._page_to(self.first + WHEEL_ROWS)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self._page_to(self.first - WHEEL_ROWS)

    # -- sorting and filtering -----------------------------------------------------

    def action_sort(self, key: SortKey) -> None:
        """Sort by ``key``; the same key again reverses the order."""
        self.descending = not self.descending if key == self.order else key in ("added", "since")
        self.order, self.first = key, 0
        self._widths = ()  # the headers change
        self.want()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key in ("name", "added", "since"):
            self.action_sort(key)  # type: ignore[arg-type]

    def set_filter(self, text: str) -> None:
        if text != self.name_filter:
            self.name_filter, self.first = text, 0
            self.want()
