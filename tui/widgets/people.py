"""The people panel: the clients table, a filter box shown on demand, and the highlighted row in full."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label

from tally.tui.widgets.clients import ClientsTable

__all__ = ["PeoplePanel"]


class PeoplePanel(Vertical):
    """Holds the table (``self.table``); ``f`` filters by name, ``c`` copies the highlighted row."""

    BINDINGS = [
        Binding("f", "filter", "Filter", tooltip="Show only people whose name contains a text (Esc clears)"),
        Binding("c", "copy_row", "Copy row", tooltip="Copy the highlighted row, exactly"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the filter (Esc again: back)"),
    ]

    def __init__(self, table: ClientsTable, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.table = table
        self.filter_box = Input(placeholder="names containing… (Enter: keep, Esc: clear)", id="people-filter")
        self.detail = Label("", id="people-detail", markup=False)
        self._detail = ""
        self.border_title = "People"

    def compose(self) -> ComposeResult:
        yield self.filter_box
        yield self.table
        yield self.detail

    def count(self, online: int, live: bool) -> None:
        """The exact number online (in a large room, pages of them are fetched as the table scrolls)."""
        self.border_title = f"People · {online:,} online" + ("" if live else " · large room")

    def on_clients_table_highlighted(self, event: ClientsTable.Highlighted) -> None:
        event.stop()
        width = self.detail.content_size.width or self.content_size.width
        text = self.table.detail(event.client, width=width) if event.client is not None else ""
        if text != self._detail:  # the table is filled again twice a second: the same row, nothing to draw
            self._detail = text
            self.detail.update(text)
        self.border_subtitle = self.table.range_text

    def action_filter(self) -> None:
        self.add_class("-filtering")
        self.filter_box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is self.filter_box:
            event.stop()
            self.table.set_filter(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is self.filter_box:
            event.stop()
            if not event.value.strip():
                self.remove_class("-filtering")
            self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Escape clears the filter while there is one; otherwise it goes on to the screen (back to the input).
        return self.has_class("-filtering") if action == "clear_filter" else True

    def action_clear_filter(self) -> None:
        self.filter_box.value = ""
        self.remove_class("-filtering")
        self.table.focus()

    def action_copy_row(self) -> None:
        client = self.table.highlighted()
        if client is None:
            self.app.notify("No row to copy yet.", title="Copy")
            return
        self.app.copy_to_clipboard(self.table.detail(client))
        self.app.notify(self.table.detail(client), title="Copied the row", markup=False)
