"""Who is connected: one row per connection, ours marked."""

from __future__ import annotations

import time

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
    """Cells are ``rich.text.Text``: a name is never parsed as markup."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, show_cursor=False, zebra_stripes=True)
        self.you: str | None = None
        self.added: dict[str, int] = {}
        self.names: dict[str, str] = {}

    def on_mount(self) -> None:
        for key in COLUMNS:
            self.add_column(key.capitalize(), key=key)

    def show(self, clients: tuple[ClientInfo, ...], you: str) -> None:
        """Replace every row with a snapshot."""
        self.you = you
        self.clear()
        self.added.clear()
        self.names.clear()
        for client in clients:
            self.upsert(client)
        self._refresh_title()

    def upsert(self, client: ClientInfo) -> None:
        self.added[client.id] = client.added
        self.names[client.id] = client.name
        name = Text(plain_text(client.name, limit=40), style="bold" if client.id == self.you else "")
        if client.id == self.you:
            name.append(" (you)", style="dim")
        cells = (name, self._added(client.id), Text(_since(client.since)), Text(plain_text(client.address, limit=60)))
        if client.id in self.rows:
            for column, cell in zip(COLUMNS, cells, strict=True):
                self.update_cell(client.id, column, cell, update_width=True)
        else:
            self.add_row(*cells, key=client.id)
        self._refresh_title()

    def drop(self, client_id: str) -> None:
        self.added.pop(client_id, None)
        self.names.pop(client_id, None)
        if client_id in self.rows:
            self.remove_row(client_id)
        self._refresh_title()

    def credit(self, client_id: str | None, amount: int) -> None:
        if client_id is None or client_id not in self.rows:
            return
        self.added[client_id] += amount
        self.update_cell(client_id, "added", self._added(client_id), update_width=True)

    def _added(self, client_id: str) -> Text:
        return Text(f"{self.added[client_id]:+,}", justify="right")

    def _refresh_title(self) -> None:
        self.border_title = f"Connected · {self.row_count}"
