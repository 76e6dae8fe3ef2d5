"""Who is connected: one row per connection, ours marked."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable

from server.protocol import ClientInfo
from tui.text import plain_text

__all__ = ["ClientsTable"]

# Most telling first: at 80 columns the address is what scrolls out of view.
COLUMNS = ("name", "added", "since", "address")


def _since(timestamp: float) -> str:
    return time.strftime("%H:%M", time.localtime(timestamp))


class ClientsTable(DataTable[Text]):
    """Renders the clients it is given. Cells are ``rich.text.Text``: a name is never parsed as markup."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, show_cursor=False, zebra_stripes=True)

    def on_mount(self) -> None:
        for key in COLUMNS:
            self.add_column(key.capitalize(), key=key)

    def show(self, clients: Iterable[ClientInfo], you: str | None) -> None:
        """Replace every row."""
        self.clear()
        for client in clients:
            self.upsert(client, you)
        self._refresh_title()

    def upsert(self, client: ClientInfo, you: str | None) -> None:
        name = Text(plain_text(client.name, limit=40), style="bold" if client.id == you else "")
        if client.id == you:
            name.append(" (you)", style="dim")
        cells = (
            name,
            Text(f"{client.added:+,}", justify="right"),
            Text(_since(client.since)),
            Text(plain_text(client.address or "", limit=60)),
        )
        if client.id in self.rows:
            for column, cell in zip(COLUMNS, cells, strict=True):
                self.update_cell(client.id, column, cell, update_width=True)
        else:
            self.add_row(*cells, key=client.id)
        self._refresh_title()

    def drop(self, client_id: str) -> None:
        if client_id in self.rows:
            self.remove_row(client_id)
        self._refresh_title()

    def _refresh_title(self) -> None:
        self.border_title = f"Connected · {self.row_count}"
