"""The dashboard: the screen that composes the panels, turns the link's events into what they show,
and turns the user's keys into adds, renames and requests.

Widgets render what this screen gives them; the model is the one record of
what is known; the link (held, never subclassed) sends. Events come in
through :meth:`Dashboard.heard`, one at a time and in order (the app adapts
them from the link); the palette's commands are :mod:`tui.commands`'.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import Static

from tally.server.protocol import PAGE_MAX, Update
from tally.tui import notes
from tally.tui.link import Link
from tally.tui.messages import (
    AddAcknowledged,
    ClientsPageArrived,
    Connected,
    Connecting,
    ConnectionLost,
    Event,
    GaveUp,
    HistoryArrived,
    LatencyMeasured,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    StoreChanged,
    UpdatesArrived,
)
from tally.tui.model import Model
from tally.tui.pager import Pager, View
from tally.tui.screens.actions import DashboardActions
from tally.tui.series import POINTS
from tally.tui.text import plain_text
from tally.tui.urls import public_url
from tally.tui.widgets import (
    ActivityLog,
    AmountEntry,
    AmountInput,
    ClientsTable,
    HistoryChart,
    KeyBar,
    PeoplePanel,
    StatusBar,
    TotalPanel,
)
from tally.tui.widgets.search import SearchBox
from tally.tui.widgets.total import Marker

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "Dashboard"]

# Below this the dashboard says the terminal is too small instead of drawing a broken screen.
MIN_WIDTH, MIN_HEIGHT = 32, 12
# In a large room the page in view is fetched again this often.
PAGE_REFRESH = 2.0


class Dashboard(DashboardActions):
    def __init__(self, link: Link, model: Model, *, reconnect: Callable[[], None]) -> None:
        """``reconnect`` restarts the link (the app owns its worker)."""
        super().__init__()
        self.link = link
        self.model = model
        self.reconnect = reconnect
        self.pager = Pager(model, self._request_clients)
        self._history_request: str | None = None
        self._away_epoch = 0  # the ledger's epoch when its store went away: a repair carries it on in a new one
        # Held rather than queried each time: the widgets are built once, here, so
        # handlers reach them directly without a DOM lookup on every update.
        self.status = StatusBar(id="status")
        self.total = TotalPanel(id="total")
        self.entry = AmountEntry(id="entry")
        self.clients = ClientsTable(id="clients")
        self.people = PeoplePanel(self.clients, id="people", classes="panel")
        self.chart = HistoryChart(id="history", classes="panel")
        self.activity = ActivityLog(id="activity", classes="panel -chosen")
        self.search_box = SearchBox(self.activity, id="search")
        self.panels_grid = Container(id="panels")
        self.panels: dict[str, Widget] = {"history": self.chart, "people": self.people, "activity": self.activity}
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            Connecting: self.connecting,
            Connected: self.connected,
            ConnectionLost: self.connection_lost,
            GaveUp: self.gave_up,
            UpdatesArrived: self.updates_arrived,
            PresenceChanged: self.presence_changed,
            OnlineChanged: self.online_changed,
            ClientsPageArrived: self.clients_page_arrived,
            HistoryArrived: self.history_arrived,
            ServerRefused: self.server_refused,
            StoreChanged: self.store_changed,
            AddAcknowledged: self.add_acknowledged,
            LatencyMeasured: self.latency_measured,
            PendingChanged: lambda event: self.show_pending(),
        }

    def compose(self) -> ComposeResult:
        yield self.status
        with Container(id="dashboard"):
            with Container(id="top"):
                yield self.total
                yield self.entry
            with self.panels_grid:  # in a grid from 80x24: people over the chart, the log beside them
                yield self.people
                yield self.activity
                yield self.chart
        yield Static("", id="too-small", markup=False)
        yield KeyBar(id="keys")
        yield self.search_box

    def on_mount(self) -> None:
        self.app.sub_title = f"{self.model.name} @ {public_url(self.link.url)}"
        self.status.url, self.status.name = public_url(self.link.url), self.model.name
        self.chart.show(self.model.series)
        self.entry.focus_input()
        self.show_pending()
        self.set_interval(PAGE_REFRESH, self._refresh_large_room)

    def size_people(self) -> None:
        """In the grid (from 80x24), the people get a row each (up to a cap), the chart what is left."""
        area = self.panels_grid.size.height
        # The border, the header and a row's slack (you are pinned on top, and in the page too), and the
        # highlighted row in full while the table is in use.
        people = max(1, self.model.online, len(self.model.clients) if self.model.live else 0)
        rows = people + 4 + 2 * self.people.has_focus_within
        # The chart keeps 6 rows (a plot of 2, its axis and times) whatever the crowd: the table scrolls.
        self.panels_grid.styles.grid_rows = f"{min(rows, max(6, min(area // 2 + 2, area - 6)))} 1fr"
        # Notifications below the total and the input, over the panels' first lines: on top they would hide the
        # total or the explanation under the input; at the bottom, the newest lines of the log.
        top = self.panels_grid.region.y if self.panels_grid.region.height else 1
        for toasts in self.query("#textual-toastrack"):  # the screen's own (none while it is torn down)
            toasts.styles.margin = (top, 0, 0, 0)

    def on_descendant_focus(self) -> None:
        self.size_people()

    def on_descendant_blur(self) -> None:
        self.size_people()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.size_people)
        width, height = event.size
        self.query_one("#too-small", Static).update(
            f"Tally needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {width}x{height}.\n"
            "Make it larger, or press ctrl+q to quit."
        )

    def heard(self, event: Event) -> None:
        """One event from the link, in the order the link posted them."""
        self._handlers[type(event)](event)

    def stopped(self, reason: str) -> None:
        """The link stopped (a bug): the user must see that nothing is followed any more."""
        self.status.state, self.status.reason = "offline", reason
        self.stale(True)
        self.activity.note(reason, style="red")

    # -- what the link tells us ------------------------------------------------------

    def connecting(self, event: Connecting) -> None:
        self.status.url = public_url(event.url)  # with several servers, the one being tried
        if self.status.state != "offline" and event.attempt <= 1:
            self.status.state = "connecting"

    def connected(self, event: Connected) -> None:
        model, welcome = self.model, event.welcome
        before = (model.ledger, model.total, model.epoch)
        model.welcome(welcome)
        self._shared(model.shared_names())
        self.entry.input.max_amount = welcome.limits.max_amount if welcome.limits else None
        self.pager.forget()
        self.people.count(model.online, model.live)
        self.size_people()
        self.clients.want()
        self.total.reset(model.total, model.seq, self._marker(welcome.recent[-1]) if welcome.recent else None)
        self.chart.show(model.series)
        self._request_history()
        self.status.state = "connected"
        self.stale(False)
        url = public_url(self.link.url)
        if before[0] and before[0] != welcome.ledger:
            text = notes.ledger_replaced(url, welcome, before[1])
            self.activity.note(text, style="bold red")
            self.notify(text, title="A different ledger", severity="error", markup=False, timeout=30)
        elif before[2] and before[2] != welcome.epoch:
            # Its store lost history and the ledger was repaired (the server closed us with 1012): one line.
            self.activity.note(notes.carried_on(welcome, len(self.link.pending)), style="bold green")
            self.show_pending()
            return
        elif welcome.missed is not None and welcome.missed:
            self.activity.away(welcome.missed, model.you)
        elif not before[0]:
            self.activity.updates(welcome.recent, model.you, earlier=True)
        self.activity.note(f"connected to {url} as {model.name} · {model.online:,} online", style="green")
        self.show_pending()

    def store_changed(self, event: StoreChanged) -> None:
        """The server's store went away, lost history, or is back: one state shown, one line each way."""
        status, before = event.status, self.status.store
        if status.state == "available":
            self.status.store = None
            repaired = before is not None and before.state == "rewound" and self.model.epoch != self._away_epoch
            if before is not None and not repaired:  # a repair said so in its own line
                self.activity.note(notes.store_back(time.time() - before.since, len(self.link.pending)), style="green")
            return
        self.status.store = status
        self._away_epoch = self.model.epoch
        text = notes.store_away(status)
        if status.state == "rewound":
            self.activity.note(text, style="bold red")
            self.notify(text, title="The store lost updates", severity="error", markup=False, timeout=20)
        else:
            self.activity.note(text, style="yellow")

    def connection_lost(self, event: ConnectionLost) -> None:
        status = self.status
        if status.state == "connected" and not event.resync:  # a resync says what happened once it is done
            self.activity.note(f"disconnected: {event.reason}", style="yellow")
        status.state, status.reason, status.retry_at, status.latency = (
            "reconnecting", event.reason, event.retry_at, None
        )  # fmt: skip
        self.stale(True)

    def gave_up(self, event: GaveUp) -> None:
        self.status.state, self.status.reason = "offline", event.reason
        self.stale(True)
        self.activity.note(f"offline: {event.reason}", style="red")
        self.notify(event.reason, title="Offline", severity="error", markup=False)

    def updates_arrived(self, event: UpdatesArrived) -> None:
        model, updates = self.model, event.updates
        if model.apply(updates) or any(update.client == model.you for update in updates):
            self.clients.changed()
        self.total.marker = self._marker(updates[-1])
        self.total.total, self.total.seq = model.total, model.seq
        self.chart.show(model.series)
        self.activity.updates(updates, model.you)

    def _marker(self, update: Update) -> Marker:
        """The last add, as the total's marker shows it: the same on every screen that saw the same updates."""
        return update.amount, notes.who(update, self.model.you, tagged=update.name in self.activity.ambiguous)

    def presence_changed(self, event: PresenceChanged) -> None:
        model = self.model
        shared = model.shared_names()  # before: a leaver who shared a name still shows the tag
        batch = [(presence, model.presence(presence)) for presence in event.presences]
        self._shared(shared | model.shared_names())
        self.size_people()
        self.clients.changed()
        # A join of someone already here (a server saying again who is here, after its store came back) is no news.
        self.activity.presence([(p, before) for p, before in batch if p.event != "joined" or before is None])
        self._shared(model.shared_names())

    def _shared(self, names: set[str]) -> None:
        """Names that two or more people go by: the table and the log show their tags."""
        self.activity.ambiguous = self.clients.ambiguous = names

    def online_changed(self, event: OnlineChanged) -> None:
        if self.model.count(event.online):
            self.link.request_clients(limit=PAGE_MAX)  # live again: the whole list, then presence keeps it
        self.people.count(self.model.online, self.model.live)
        self.size_people()
        self.clients.changed()

    def clients_page_arrived(self, event: ClientsPageArrived) -> None:
        self.model.page_arrived(event.page)
        self._shared(self.model.shared_names())
        shown = self.pager.arrived(event.page, time.monotonic())
        if shown is not None:
            view, (total, rows) = shown
            self.clients.show_page(total, view.offset, rows, self.model.me)
        else:
            self.clients.changed()

    def history_arrived(self, event: HistoryArrived) -> None:
        if event.page.id == self._history_request:
            self.model.history_arrived(event.page.points, time.time())
            self.chart.show(self.model.series)

    def server_refused(self, event: ServerRefused) -> None:
        error, add = event.error, event.add
        self.activity.refused(error, add)
        if add is not None and event.settled:
            self.model.undo.refused(add.op)
            if add.text and not self.entry.input.value:
                # Refused for good: give the text back, so it can be corrected.
                self.entry.input.value = add.text
        text = plain_text(f"{error.code}: {error.message}")
        self.notify(text, title="Refused", severity="error", markup=False)

    def add_acknowledged(self, event: AddAcknowledged) -> None:
        self.model.undo.acknowledged(event.add.op, event.seq)
        self.activity.applied(event.add, event.seq, time.time())

    def latency_measured(self, event: LatencyMeasured) -> None:
        self.status.latency = event.seconds

    # -- what the widgets ask for ---------------------------------------------------

    def on_clients_table_page_wanted(self, message: ClientsTable.PageWanted) -> None:
        total, rows = self.pager.want(message.view, time.monotonic())
        message.table.show_page(total, message.view.offset, rows, self.model.me)

    def _request_clients(self, offset: int, limit: int, view: View) -> str | None:
        return self.link.request_clients(
            offset=offset, limit=limit, sort=view.sort, descending=view.descending, filter=view.filter
        )

    def _refresh_large_room(self) -> None:
        # In a large room nothing tells us when the page in view changes: look again now and then.
        if not self.model.live and self.status.state == "connected":
            self.clients.want()

    def on_history_chart_window_chosen(self, message: HistoryChart.WindowChosen) -> None:
        if message.name != self.model.series.window.name:
            self.model.choose_window(message.name)
            self.chart.show(self.model.series)
            self._request_history()

    def _request_history(self) -> None:
        window = self.model.series.window
        self._history_request = self.link.request_history(time.time() - window.seconds, POINTS)

    @on(AmountInput.Entered)
    def add(self, message: AmountInput.Entered) -> None:
        add = self.link.add(message.amount, text=message.text)
        self.model.undo.typed(add)
        self.show_pending()
        if not self.link.connected:
            # Offline: list it with the time it was typed; the total panel shows where they lead.
            self.activity.waiting(add)

    def show_pending(self) -> None:
        """Show how many adds wait, and where they lead: after the app typed one, or the server settled one."""
        pending = self.link.pending
        self.status.pending = len(pending)
        self.total.pending_amount, self.total.pending = pending.amount, len(pending)

    def stale(self, stale: bool) -> None:
        """Offline, everything shown is the last known state: say so, and dim it."""
        self.total.stale = stale
        self.clients.set_class(stale, "-stale")
