"""The Tally dashboard: composes the widgets and turns connection messages into what they show."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from tui.connection import Link
from tui.journal import Journal, fresh_in
from tui.messages import (
    AddAcknowledged,
    Connected,
    Connecting,
    ConnectionLost,
    GaveUp,
    LatencyMeasured,
    LedgerChanged,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tui.model import Model
from tui.pending import Pending
from tui.screens.choice import ledger_changed, quit_with_pending
from tui.screens.rename import RenameScreen
from tui.text import plain_text
from tui.urls import public_url
from tui.widgets import ActivityLog, AmountEntry, AmountInput, ClientsTable, StatusBar, TotalPanel

__all__ = ["TallyApp"]


class TallyApp(App[None]):
    TITLE = "Tally"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("slash", "focus_input", "Focus input", key_display="/"),
        Binding("ctrl+z", "undo", "Undo", priority=True),
        Binding("ctrl+n", "rename", "Rename", priority=True),
        Binding("ctrl+r", "reconnect", "Reconnect", priority=True),
        Binding("ctrl+l", "clear_log", "Clear log", priority=True),
    ]

    def __init__(
        self,
        url: str | Sequence[str],
        name: str,
        *,
        pending: Pending | None = None,
        leftovers: Sequence[Journal] = (),
        autoconnect: bool = True,
        **link_options: Any,
    ) -> None:
        """``pending`` (kept on disk) and ``leftovers`` (journals of dashboards that quit or died) come from the CLI.

        ``autoconnect=False`` leaves the connection worker unstarted (snapshot tests
        feed messages instead). ``link_options`` go to :class:`Link`: token, tls,
        stall_timeout, start_server.
        """
        super().__init__()
        self.autoconnect = autoconnect
        self.model = Model(name, pending)
        self.link = Link(url, self.model, self.post_message, **link_options)
        self.link_options = link_options
        self.leftovers = list(leftovers)
        self._asking_about_ledger = False
        # Held rather than queried each time: the widgets are built once, here, so
        # handlers reach them directly without a DOM lookup on every update.
        self.status = StatusBar(id="status")
        self.total = TotalPanel(id="total")
        self.entry = AmountEntry(id="entry")
        self.clients = ClientsTable(id="clients")
        self.activity = ActivityLog(id="activity")

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.status
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.total
                yield self.entry
            yield self.clients
        yield self.activity
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.model.name} @ {public_url(self.link.url)}"
        self.status.url = public_url(self.link.url)
        self.entry.focus_input()
        self._show_pending()
        if self.autoconnect:
            self.run_link()
            for journal in self.leftovers:
                if Pending(journal):
                    self.send_leftovers(journal)
                else:
                    journal.remove()  # a session with nothing left to send

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
        self.entry.input.max_amount = welcome.limits.max_amount if welcome.limits else None
        self.clients.show(model.clients.values(), model.you)
        self.total.total, self.total.seq = model.total, model.seq
        self.total.show_history([point.total for point in model.history])
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
        for client_id in model.apply(updates):
            self.clients.upsert(model.clients[client_id], model.you)
        self.total.total, self.total.seq = model.total, model.seq
        self.total.extend_history([update.total for update in updates])
        self.activity.updates(updates, model.you)

    def on_presence_changed(self, message: PresenceChanged) -> None:
        batch = []
        for presence in message.presences:
            batch.append((presence, self.model.presence(presence)))
            if presence.event == "left":
                self.clients.drop(presence.client.id)
            else:
                self.clients.upsert(presence.client, self.model.you)
        self.activity.presence(batch)

    def on_online_changed(self, message: OnlineChanged) -> None:
        if self.model.count(message.online):
            self.link.request_clients(limit=500)

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

    # -- what the user does -------------------------------------------------------

    @on(AmountInput.Entered)
    def add(self, message: AmountInput.Entered) -> None:
        self.link.add(message.amount, text=message.text)

    def action_undo(self) -> None:
        mine = self.model.undoable()
        if mine is None:
            self.notify("Nothing of yours to undo yet.", title="Undo", markup=False)
            return
        mine.undone = True  # a second ctrl+z before the answer takes back the add before it
        self.link.add(-mine.amount, undo=mine.op)
        self.activity.note(f"undoing your {mine.amount:+,} (update {mine.seq:,})")

    def action_focus_input(self) -> None:
        self.entry.focus_input()

    def action_rename(self) -> None:
        def renamed(name: str | None) -> None:
            if name is not None and name != self.model.name:
                self.link.rename(name)
                self.sub_title = f"{name} @ {public_url(self.link.url)}"

        self.push_screen(RenameScreen(self.model.name), renamed)

    def action_reconnect(self) -> None:
        self.activity.note("reconnecting now")
        if self.autoconnect and not any(worker.is_running for worker in self.workers if worker.group == "link"):
            self.run_link()
        else:
            self.link.reconnect_now()

    def action_clear_log(self) -> None:
        self.activity.clear_entries()

    async def action_quit(self) -> None:
        pending = self.model.pending
        if not pending:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "discard":
                pending.clear()
                pending.save()
                self.exit()
            elif choice == "keep":
                pending.save()
                self.exit()

        self.push_screen(quit_with_pending(len(pending)), chosen)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Undo", "Take back your last add (ctrl+z)", self.action_undo)
        yield SystemCommand("Rename", "Change your display name (ctrl+n)", self.action_rename)
        yield SystemCommand(
            "Reconnect now", "Drop the connection and reconnect at once (ctrl+r)", self.action_reconnect
        )
        yield SystemCommand("Clear log", "Empty the activity log (ctrl+l)", self.action_clear_log)
        yield SystemCommand("Focus input", "Type an amount to add (/)", self.action_focus_input)
