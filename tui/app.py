"""The Tally dashboard: composes the widgets and turns connection messages into what they show."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from tui.connection import Link
from tui.messages import (
    Connected,
    Connecting,
    ConnectionLost,
    GaveUp,
    LatencyMeasured,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tui.model import Model
from tui.screens.rename import RenameScreen
from tui.text import plain_text
from tui.urls import public_url
from tui.widgets import ActivityLog, AmountEntry, ClientsTable, StatusBar, TotalPanel

__all__ = ["TallyApp"]

# A second ctrl+q within this many seconds quits even with adds pending.
QUIT_CONFIRM_SECONDS = 5.0


class TallyApp(App[None]):
    TITLE = "Tally"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("slash", "focus_input", "Focus input", key_display="/"),
        Binding("ctrl+n", "rename", "Rename", priority=True),
        Binding("ctrl+r", "reconnect", "Reconnect", priority=True),
        Binding("ctrl+l", "clear_log", "Clear log", priority=True),
    ]

    def __init__(
        self,
        url: str,
        name: str,
        *,
        session: str | None = None,
        autoconnect: bool = True,
        **link_options: Any,
    ) -> None:
        """``autoconnect=False`` leaves the connection worker unstarted (snapshot tests feed messages instead).

        ``link_options`` go to :class:`Link`: token, tls, stall_timeout, start_server.
        """
        super().__init__()
        self.autoconnect = autoconnect
        self.model = Model(name)
        self.link = Link(url, self.model, self.post_message, session=session, **link_options)
        self._quit_asked_at = 0.0
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
        if self.autoconnect:
            self.run_link()

    @work(exclusive=True, exit_on_error=False, group="link")
    async def run_link(self) -> None:
        await self.link.run()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The link never returns; if it fails, that is a bug, but the user must see
        # that the dashboard stopped following the server, and be able to restart it.
        if event.worker.group == "link" and event.state == WorkerState.ERROR:
            reason = f"the connection stopped unexpectedly: {event.worker.error!r}"
            self.status.state, self.status.reason = "offline", reason
            self.activity.note(reason, style="red")
            self.notify(reason, title="Offline", severity="error", markup=False)

    # -- what the connection tells us ----------------------------------------------

    def on_connecting(self, message: Connecting) -> None:
        if self.status.state != "offline" and message.attempt <= 1:
            self.status.state = "connecting"

    def on_connected(self, message: Connected) -> None:
        model = self.model
        model.welcome(message.welcome)
        self.clients.show(model.clients.values(), model.you)
        self.total.total, self.total.seq = model.total, model.seq
        self.total.show_history([point.total for point in model.history])
        self.status.state = "connected"
        self.activity.note(
            f"connected to {public_url(self.link.url)} as {model.name} · {len(model.clients)} online",
            style="green",
        )

    def on_connection_lost(self, message: ConnectionLost) -> None:
        status = self.status
        if status.state == "connected":
            self.activity.note(f"disconnected: {message.reason}", style="yellow")
        status.state, status.reason, status.retry_at, status.latency = (
            "reconnecting", message.reason, message.retry_at, None
        )  # fmt: skip

    def on_gave_up(self, message: GaveUp) -> None:
        self.status.state, self.status.reason = "offline", message.reason
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
        presence = message.presence
        previous = self.model.presence(presence)
        if presence.event == "left":
            self.clients.drop(presence.client.id)
        else:
            self.clients.upsert(presence.client, self.model.you)
        self.activity.presence(presence, previous)

    def on_server_refused(self, message: ServerRefused) -> None:
        error = message.error
        self.activity.refused(error)
        text = plain_text(f"{error.code}: {error.message}")
        self.notify(text, title="Refused", severity="error", markup=False)

    def on_latency_measured(self, message: LatencyMeasured) -> None:
        self.status.latency = message.seconds

    def on_pending_changed(self, message: PendingChanged) -> None:
        self.status.pending = len(self.model.pending)

    # -- what the user does -------------------------------------------------------

    @on(AmountEntry.Submitted)
    def add(self, message: AmountEntry.Submitted) -> None:
        self.link.add(message.amount)

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
        self.activity.clear()

    async def action_quit(self) -> None:
        pending = len(self.model.pending)
        now = time.monotonic()
        if pending and now - self._quit_asked_at > QUIT_CONFIRM_SECONDS:
            self._quit_asked_at = now
            self.notify(
                f"{pending} add(s) not yet acknowledged will be lost. Press ctrl+q again to quit.",
                title="Adds pending",
                severity="warning",
            )
            return
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Rename", "Change your display name", self.action_rename)
        yield SystemCommand("Reconnect now", "Drop the connection and reconnect at once", self.action_reconnect)
        yield SystemCommand("Clear log", "Empty the activity log", self.action_clear_log)
        yield SystemCommand("Focus input", "Type an amount to add", self.action_focus_input)
