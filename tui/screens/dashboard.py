"""The dashboard: the screen that composes the panels, turns the link's events into what they show,
and turns the user's keys into adds, renames and requests.

Widgets render what this screen gives them; the model is the one record of
what is known; the link (held, never subclassed) sends. Events come in
through :meth:`Dashboard.heard`, one at a time and in order (the app adapts
them from the link); the palette's commands are :mod:`tui.commands`'.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from tally.server.protocol import PAGE_MAX
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
from tally.tui.screens.rename import RenameScreen
from tally.tui.series import POINTS
from tally.tui.text import plain_text
from tally.tui.urls import public_url
from tally.tui.widgets import (
    ActivityLog,
    AmountEntry,
    AmountInput,
    ClientsTable,
    HistoryChart,
    PeoplePanel,
    StatusBar,
    TotalPanel,
)
from tally.tui.widgets.amount import too_small

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "Dashboard"]

# Below this the dashboard says the terminal is too small instead of drawing a broken screen.
MIN_WIDTH, MIN_HEIGHT = 32, 12
# In a large room the page in view is fetched again this often.
PAGE_REFRESH = 2.0
# Keys typed anywhere that start an amount.
AMOUNT_KEYS = frozenset("0123456789+-")


class Dashboard(Screen[None]):
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
            with Vertical(id="controls"):
                yield self.total
                yield self.entry
            yield self.people
            yield self.chart
            yield self.activity
        yield Static("", id="too-small", markup=False)
        # The palette's key among the others: docked on the right, a compact footer drew a stray character.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.app.sub_title = f"{self.model.name} @ {public_url(self.link.url)}"
        self.status.url, self.status.name = public_url(self.link.url), self.model.name
        self.chart.show(self.model.series)
        self.entry.focus_input()
        self.show_pending()
        self.set_interval(PAGE_REFRESH, self._refresh_large_room)

    def on_resize(self, event: events.Resize) -> None:
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
        self.activity.ambiguous = model.shared_names()
        self.entry.input.max_amount = welcome.limits.max_amount if welcome.limits else None
        self.pager.forget()
        self.people.count(model.online, model.live)
        self.clients.want()
        self.total.reset(model.total, model.seq)
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
        self.total.total, self.total.seq = model.total, model.seq
        self.chart.show(model.series)
        self.activity.updates(updates, model.you)

    def presence_changed(self, event: PresenceChanged) -> None:
        batch = [(presence, self.model.presence(presence)) for presence in event.presences]
        self.activity.ambiguous = self.model.shared_names()
        self.clients.changed()
        self.activity.presence(batch)

    def online_changed(self, event: OnlineChanged) -> None:
        if self.model.count(event.online):
            self.link.request_clients(limit=PAGE_MAX)  # live again: the whole list, then presence keeps it
        self.people.count(self.model.online, self.model.live)
        self.clients.changed()

    def clients_page_arrived(self, event: ClientsPageArrived) -> None:
        self.model.page_arrived(event.page)
        self.activity.ambiguous = self.model.shared_names()
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
            self.model.undo_refused(add)
            if add.text and not self.entry.input.value:
                # Refused for good: give the text back, so it can be corrected.
                self.entry.input.value = add.text
        text = plain_text(f"{error.code}: {error.message}")
        self.notify(text, title="Refused", severity="error", markup=False)

    def add_acknowledged(self, event: AddAcknowledged) -> None:
        self.model.acknowledged(event.add, event.seq)
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
        self.show_pending()
        if not self.link.connected:
            # Offline: list it with the time it was typed; the total panel shows where they lead.
            self.activity.waiting(add)

    def on_key(self, event: events.Key) -> None:
        # A digit, + or - typed anywhere but in a text box starts an amount.
        if too_small(self):
            return  # "terminal too small": nothing is typed blind (the input's own keys stop there too)
        if event.character in AMOUNT_KEYS and self.app.screen is self and not isinstance(self.focused, Input):
            event.stop()
            self.entry.focus_input()
            self.entry.input.insert_text_at_cursor(event.character)

    # -- what the user does -------------------------------------------------------------

    def action_undo(self) -> None:
        if too_small(self):
            return  # an undo nobody can see would be an add made blind
        mine = self.model.take_back()
        if mine is None:
            self.notify("Nothing of yours to undo yet.", title="Undo", markup=False)
            return
        self.link.add(-mine.amount, undo=mine.op)
        self.show_pending()
        self.activity.note(f"undoing your {mine.amount:+,} (update {mine.seq:,})")

    def action_focus_input(self) -> None:
        self.entry.focus_input()

    def action_rename(self) -> None:
        def renamed(name: str | None) -> None:
            if name is not None and name != self.model.name:
                self.model.rename(name)
                self.link.rename(name)
                self.app.sub_title = f"{name} @ {public_url(self.link.url)}"
                self.status.name = name
                self.clients.changed()

        self.app.push_screen(RenameScreen(self.model.name), renamed)

    def action_reconnect(self) -> None:
        self.activity.note("reconnecting now")
        self.reconnect()

    def action_clear_log(self) -> None:
        self.activity.clear_entries()

    def action_show(self, name: str) -> None:
        """Show a panel (on a small screen, instead of the one shown) and go to it."""
        for key, panel in self.panels.items():
            panel.set_class(key == name, "-chosen")
        target = self.clients if name == "people" else self.panels[name]
        target.focus()

    def help_sections(self) -> list[tuple[str, Sequence[BindingType]]]:
        return [
            ("Anywhere", self.app.BINDINGS),
            ("People (F3)", [*ClientsTable.BINDINGS, *PeoplePanel.BINDINGS]),
            ("History (F2)", HistoryChart.BINDINGS),
            ("Activity (F4)", ActivityLog.BINDINGS),
        ]

    def action_copy_total(self) -> None:
        total = self.model.total
        if total is None:
            self.notify("No total yet: not connected.", title="Copy")
            return
        self.app.copy_to_clipboard(str(total))
        self.notify(f"{total:,}", title="Copied the total", markup=False)

    def action_copy_log(self) -> None:
        self.app.copy_to_clipboard(self.activity.selected_text())
        self.notify("Every line of the log the filter shows.", title="Copied the log")

    def show_pending(self) -> None:
        """Show how many adds wait, and where they lead: after the app typed one, or the server settled one."""
        pending = self.link.pending
        self.status.pending = len(pending)
        self.total.pending_amount, self.total.pending = pending.amount, len(pending)

    def stale(self, stale: bool) -> None:
        """Offline, everything shown is the last known state: say so, and dim it."""
        self.total.stale = stale
        self.clients.set_class(stale, "-stale")
