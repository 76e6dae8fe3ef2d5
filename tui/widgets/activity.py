"""What just happened: adds, joins, leaves, renames, refusals, connection changes."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from server.protocol import Error, Presence, Update
from tui.text import plain_text

__all__ = ["ActivityLog"]

# A flood is summarised, not written line by line: the total shows the result.
MAX_LINES_PER_BATCH = 20


def _stamp(at: float | None = None) -> Text:
    return Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")


def _name(name: str) -> Text:
    return Text(plain_text(name, limit=40), style="bold")


class ActivityLog(RichLog):
    """Every line is built from ``Text`` parts, so nothing from the network is markup."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False, highlight=False, wrap=False, max_lines=1000)
        self.border_title = "Activity"

    def updates(self, updates: list[Update], you: str | None) -> None:
        skipped = len(updates) - MAX_LINES_PER_BATCH
        if skipped > 0:
            self.write(Text.assemble(_stamp(), (f"… {skipped:,} more updates", "dim italic")))
        for update in updates[-MAX_LINES_PER_BATCH:]:
            style = "green" if update.amount > 0 else "red"
            who = _name(update.name)
            if update.client is not None and update.client == you:
                who.append(" (you)", style="dim")
            self.write(
                Text.assemble(
                    _stamp(update.at), who, " added ", (f"{update.amount:+,}", style), f"  → {update.total:,}"
                )
            )

    def presence(self, presence: Presence, previous_name: str | None) -> None:
        client = presence.client
        if presence.event == "joined":
            line = Text.assemble(_name(client.name), " joined from ", plain_text(client.address, limit=60))
        elif presence.event == "left":
            line = Text.assemble(_name(client.name), " left")
        else:
            line = Text.assemble(_name(previous_name or "someone"), " is now ", _name(client.name))
        self.write(Text.assemble(_stamp(), line))

    def refused(self, error: Error) -> None:
        self.write(
            Text.assemble(
                _stamp(),
                ("refused ", "bold red"),
                (plain_text(error.code, limit=40), "red"),
                ": ",
                plain_text(error.message),
            )
        )

    def note(self, text: str, style: str = "dim") -> None:
        self.write(Text.assemble(_stamp(), (plain_text(text), style)))
