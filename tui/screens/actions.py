"""What the user does on the dashboard: undo and redo, search, leave a panel, rename, copy, show a panel.

The dashboard's base: the keys' actions, apart from what the link tells it (:mod:`tui.screens.dashboard`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from tally.tui import notes
from tally.tui.link import Link
from tally.tui.model import Model
from tally.tui.screens.rename import RenameScreen
from tally.tui.urls import public_url
from tally.tui.widgets import ActivityLog, AmountEntry, ClientsTable, StatusBar
from tally.tui.widgets.amount import too_small
from tally.tui.widgets.search import SearchBox

__all__ = ["AMOUNT_KEYS", "DashboardActions"]

# Keys typed anywhere that start an amount.
AMOUNT_KEYS = frozenset("0123456789+-")


class DashboardActions(Screen[None]):
    """The dashboard's keys; :class:`tui.screens.dashboard.Dashboard` builds what they act on."""

    BINDINGS = [
        Binding("escape", "leave", "Back", show=False, tooltip="Leave a panel (or the search): back to the input"),
    ]

    @dataclass
    class Renamed(Message):
        """The user chose a new name (adds typed before keep theirs)."""

        name: str

    link: Link
    model: Model
    reconnect: Callable[[], None]
    status: StatusBar
    entry: AmountEntry
    clients: ClientsTable
    activity: ActivityLog
    search_box: SearchBox
    panels: dict[str, Widget]

    def show_pending(self) -> None:
        raise NotImplementedError

    def on_key(self, event: events.Key) -> None:
        # A digit, + or - typed anywhere but in a text box starts an amount.
        if too_small(self):
            return  # "terminal too small": nothing is typed blind (the input's own keys stop there too)
        if event.character in AMOUNT_KEYS and self.app.screen is self and not isinstance(self.focused, Input):
            event.stop()
            self.entry.focus_input()
            self.entry.input.insert_text_at_cursor(event.character)

    # -- what the user does -------------------------------------------------------------

    def action_undo(self, redo: bool = False) -> None:
        """ctrl+z: take back my most recent add in effect; ctrl+y (``redo``): put back the one undone last."""
        if too_small(self):
            return  # an undo nobody can see would be an add made blind
        stack = self.model.undo
        taken = stack.take_redo() if redo else stack.take_back()
        if taken is None:
            what = "Nothing undone to redo." if redo else "Nothing of yours to undo."
            self.notify(what, title="Redo" if redo else "Undo", markup=False)
            return
        original = stack.find(taken.undoes) if taken.undoes else None  # what an undo took back (before it is let go)
        sent = stack.sent(taken, self.link.add(-taken.amount, undo=taken.op))
        self.show_pending()
        text = notes.took_back(taken, sent, original)
        self.activity.note(text)
        self.notify(text, title="Redo" if redo else "Undo", markup=False)

    def action_redo(self) -> None:
        self.action_undo(redo=True)

    def action_focus_input(self) -> None:
        self.entry.focus_input()

    def action_leave(self) -> None:
        """Esc: out of the search, or out of a panel, back to the amount input."""
        if self.search_box.is_open or self.activity.needle:
            self.search_box.close(keep=False)
        self.entry.focus_input()

    def action_search(self) -> None:
        """/: the log's search box; every match highlighted as it is typed."""
        if not too_small(self):
            self.action_show("activity")
            self.search_box.open()

    def action_rename(self) -> None:
        def renamed(name: str | None) -> None:
            if name is not None and name != self.model.name:
                self.model.rename(name)
                self.link.rename(name)
                self.app.sub_title = f"{name} @ {public_url(self.link.url)}"
                self.status.name = name
                self.clients.changed()
                self.post_message(self.Renamed(name))  # the app saves it, for the next start

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
