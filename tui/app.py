"""The Tally dashboard: composes the widgets and turns connection messages into what they show."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from tally.server.protocol import PAGE_MAX
from tally.tui.actions import Actions
from tally.tui.config import Preferences
from tally.tui.connection import Link
from tally.tui.journal import Journal, fresh_in
from tally.tui.messages import (
    AddAcknowledged,
    ClientsPageArrived,
    Connected,
    Connecting,
    ConnectionLost,
    GaveUp,
    HistoryArrived,
    LatencyMeasured,
    LedgerChanged,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tally.tui.model import Model
from tally.tui.pager import Pager
from tally.tui.pending import Pending
from tally.tui.screens.choice import ledger_changed
from tally.tui.series import POINTS
from tally.tui.text import plain_text
from tally.tui.urls import public_url
from tally.tui.widgets import ActivityLog, AmountEntry, ClientsTable, HistoryChart, PeoplePanel, StatusBar, TotalPanel
from tally.tui.widgets.clients import View

__all__ = ["TallyApp"]

# Below this the dashboard says the terminal is too small instead of drawing a broken screen.
MIN_WIDTH, MIN_HEIGHT = 32, 12
# In a large room the page in view is fetched again this often.
PAGE_REFRESH = 2.0


class TallyApp(Actions):
    TITLE = "Tally"
    CSS_PATH = "app.tcss"
    # Breakpoints set these classes on the screen; app.tcss lays the panels out by them:
    # a grid from 80x24, a stack below (one panel at a time, F2-F4), a message below 32x12.
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny-width"), (MIN_WIDTH, "-narrow"), (80, "-wide"), (110, "-wider")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny-height"), (MIN_HEIGHT, "-short"), (24, "-tall")]
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", key_display="?", tooltip="This help: the panels and every key"),
        Binding("f2", "show('history')", "Chart", key_display="F2", tooltip="Show the history chart and go to it"),
        Binding("f3", "show('people')", "People", key_display="F3", tooltip="Show the people and go to them"),
        Binding("f4", "show('activity')", "Log", key_display="F4", tooltip="Show the activity log and go to it"),
        Binding("ctrl+z", "undo", "Undo", priority=True, tooltip="Take back your last add"),
        Binding("ctrl+n", "rename", "Rename", priority=True, tooltip="Change your display name"),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit (asks first if adds are still waiting)"),
        Binding("ctrl+p", "command_palette", "Commands", tooltip="Every command, with its key"),
        Binding("slash", "focus_input", "Input", show=False, key_display="/", tooltip="Go back to the amount input"),
        Binding("ctrl+t", "copy_total", "Copy total", show=False, priority=True, tooltip="Copy the exact total"),
        Binding("ctrl+r", "reconnect", "Reconnect", show=False, priority=True, tooltip="Reconnect now (skip the wait)"),
        Binding("ctrl+l", "clear_log", "Clear log", show=False, priority=True, tooltip="Empty the activity log"),
    ]

    def __init__(
        self,
        url: str | Sequence[str],
        name: str,
        *,
        pending: Pending | None = None,
        leftovers: Sequence[Journal] = (),
        autoconnect: bool = True,
        preferences: Preferences | None = None,
        config: Path | None = None,
        **link_options: Any,
    ) -> None:
        """``pending`` (kept on disk) and ``leftovers`` (journals of dashboards that quit or died) come from the CLI.

        ``autoconnect=False`` leaves the connection worker unstarted (snapshot tests
        feed messages instead). ``preferences`` were read from ``config``, where
        a theme chosen in the app is saved (nothing is saved without it).
        ``link_options`` go to :class:`Link`: token, tls, stall_timeout, start_server.
        """
        super().__init__()
        self.autoconnect = autoconnect
        self.model = Model(name, pending)
        self.link = Link(url, self.model, self.post_message, **link_options)
        self.link_options = link_options
        self.leftovers = list(leftovers)
        self.preferences = preferences or Preferences()
        self.config = config
        self.pager = Pager(self.model, self._request_clients)
        self._history_request: str | None = None
        self._asking_about_ledger = False
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
        self.sub_title = f"{self.model.name} @ {public_url(self.link.url)}"
        self.status.url, self.status.name = public_url(self.link.url), self.model.name
        self.chart.show(self.model.series)
        theme = self.preferences.theme
        if theme is not None and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.preferences.problem:
            self.notify(self.preferences.problem, title="Preferences not read", severity="warning", markup=False)
        self.entry.focus_input()
        self._show_pending()
        self.set_interval(PAGE_REFRESH, self._refresh_large_room)
        if self.autoconnect:
            self.run_link()
            for journal in self.leftovers:
                if Pending(journal):
                    self.send_leftovers(journal)
                else:
                    journal.remove()  # a session with nothing left to send

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        self.query_one("#too-small", Static).update(
            f"Tally needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {width}x{height}.\n"
            "Make it larger, or press ctrl+q to quit."
        )

    @work(exclusive=True, exit_on_error=False, group="link")
    async def run_link(self) -> None:
        await self.link.run()

    @work(exit_on_error=False, group="leftovers")
    async def send_leftovers(self, journal: Journal) -> None:
        """Send the adds a dashboard that quit or died left for this server, then remove its file."""
        options = {key: value for key, value in self.link_options.items() if key != "start_server"}
        leftovers = Link(self.link.url, Model(self.model.name, Pending(journal)), lambda message: None,
                         role="watcher", once=True, **options)  # fmt: skip
        count = len(leftovers.pending)
        await leftovers.run()
        count -= len(leftovers.pending)
        if leftovers.pending:
            journal.release()  # for another ledger, or the server refused us: kept for later
        else:
            journal.remove()
        if count:
            self.activity.note(f"sent {count} add(s) left by an earlier dashboard", style="green")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The link never returns; if it fails, that is a bug, but the user must see
        # that the dashboard stopped following the server, and be able to restart it.
        if event.worker.group == "link" and event.state == WorkerState.ERROR:
            reason = f"the connection stopped unexpectedly: {event.worker.error!r}"
            self.status.state, self.status.reason = "offline", reason
            self._stale(True)
            self.activity.note(reason, style="red")
            self.notify(reason, title="Offline", severity="error", markup=False)

    # -- what the connection tells us ----------------------------------------------

    def on_connecting(self, message: Connecting) -> None:
        self.status.url = public_url(message.url)  # with several servers, the one being tried
        if self.status.state != "offline" and message.attempt <= 1:
            self.status.state = "connecting"

    def on_connected(self, message: Connected) -> None:
        model, welcome = self.model, message.welcome
        before = (model.ledger, model.total)
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
        self._stale(False)
        url = public_url(self.link.url)
        if before[0] and before[0] != welcome.ledger:
            text = (
                f"{url} now holds a different ledger ({welcome.ledger}, total {welcome.total:,}; it was {before[1]:,})"
            )
            self.activity.note(text, style="bold red")
            self.notify(text, title="A different ledger", severity="error", markup=False, timeout=30)
        elif welcome.missed is not None and welcome.missed:
            self.activity.away(welcome.missed, model.you)
        elif not before[0]:
            self.activity.updates(welcome.recent, model.you, earlier=True)
        self.activity.note(f"connected to {url} as {model.name} · {model.online:,} online", style="green")
        self._show_pending()

    def on_ledger_changed(self, message: LedgerChanged) -> None:
        if self._asking_about_ledger:
            return  # a reconnect while the question is open: it is still the same question
        self._asking_about_ledger = True

        def chosen(choice: str | None) -> None:
            self._asking_about_ledger = False
            if choice == "discard":
                self.link.discard_held()
                self.activity.note(f"discarded {message.pending} add(s) typed for ledger {message.expected}")
            else:
                old = self.link.keep_for_other_ledger(self._fresh_pending())
                if old.journal is not None:
                    old.journal.release()
                self.activity.note(f"kept {message.pending} add(s) for ledger {message.expected}; not sent here")

        self.activity.note(
            f"this server holds ledger {message.found}; {message.pending} pending add(s) were typed for "
            f"{message.expected} and were not sent",
            style="bold red",
        )
        self.push_screen(ledger_changed(public_url(self.link.url), message.expected, message.found, message.pending),
                         chosen)  # fmt: skip

    def _fresh_pending(self) -> Pending:
        journal = self.model.pending.journal
        return Pending(None if journal is None else fresh_in(journal.path.parent))

    def on_connection_lost(self, message: ConnectionLost) -> None:
        status = self.status
        if status.state == "connected":
            self.activity.note(f"disconnected: {message.reason}", style="yellow")
        status.state, status.reason, status.retry_at, status.latency = (
            "reconnecting", message.reason, message.retry_at, None
        )  # fmt: skip
        self._stale(True)

    def on_gave_up(self, message: GaveUp) -> None:
        self.status.state, self.status.reason = "offline", message.reason
        self._stale(True)
        self.activity.note(f"offline: {message.reason}", style="red")
        self.notify(message.reason, title="Offline", severity="error", markup=False)

    def on_updates_arrived(self, message: UpdatesArrived) -> None:
        model, updates = self.model, message.updates
        if model.apply(updates) or any(update.client == model.you for update in updates):
            self.clients.changed()
        self.total.total, self.total.seq = model.total, model.seq
        self.chart.show(model.series)
        self.activity.updates(updates, model.you)

    def on_presence_changed(self, message: PresenceChanged) -> None:
        batch = [(presence, self.model.presence(presence)) for presence in message.presences]
        self.activity.ambiguous = self.model.shared_names()
        self.clients.changed()
        self.activity.presence(batch)

    def on_online_changed(self, message: OnlineChanged) -> None:
        if self.model.count(message.online):
            self.link.request_clients(limit=PAGE_MAX)  # live again: the whole list, then presence keeps it
        self.people.count(self.model.online, self.model.live)
        self.clients.changed()

    def on_clients_page_arrived(self, message: ClientsPageArrived) -> None:
        self.model.page_arrived(message.page)
        self.activity.ambiguous = self.model.shared_names()
        shown = self.pager.arrived(message.page, time.monotonic())
        if shown is not None:
            view, (total, rows) = shown
            self.clients.show_page(total, view.offset, rows, self.model.me)
        else:
            self.clients.changed()

    def on_history_arrived(self, message: HistoryArrived) -> None:
        if message.page.id == self._history_request:
            self.model.history_arrived(message.page.points, time.time())
            self.chart.show(self.model.series)

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

    def on_server_refused(self, message: ServerRefused) -> None:
        error, add = message.error, message.add
        self.activity.refused(error, add)
        if add is not None and add.undo is not None:
            for mine in self.model.mine:
                if mine.op == add.undo and error.code not in ("unavailable", "rate_limited"):
                    mine.undone = False
        if add is not None and add.op not in self.model.pending and add.text and not self.entry.input.value:
            # Refused for good: give the text back, so it can be corrected.
            self.entry.input.value = add.text
        text = plain_text(f"{error.code}: {error.message}")
        self.notify(text, title="Refused", severity="error", markup=False)

    def on_add_acknowledged(self, message: AddAcknowledged) -> None:
        self.model.acknowledged(message.add, message.seq)
        self.activity.applied(message.add, message.seq, time.time())

    def on_latency_measured(self, message: LatencyMeasured) -> None:
        self.status.latency = message.seconds

    def on_pending_changed(self, message: PendingChanged) -> None:
        self._show_pending()

    def _show_pending(self) -> None:
        pending = self.model.pending
        self.status.pending = len(pending)
        self.total.pending_amount, self.total.pending = pending.amount, len(pending)

    def _stale(self, stale: bool) -> None:
        """Offline, everything shown is the last known state: say so, and dim it."""
        self.total.stale = stale
        self.clients.set_class(stale, "-stale")
