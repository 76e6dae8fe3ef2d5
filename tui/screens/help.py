"""The help screen: what each panel shows, and the app's own keys, read from the bindings themselves.

The keys are listed from the same ``BINDINGS`` that handle them, so the help
cannot drift from what the keys do. The input's editing keys (Textual's own)
are left out: they are the usual ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tally.tui.widgets import ActivityLog, ClientsTable, HistoryChart, PeoplePanel

__all__ = ["HelpScreen", "key_label", "sections"]

PANELS = (
    ("Total", "The shared total. ▲/▼ is the last add and who made it; then how many updates made it, or your adds "
     "still waiting for the server and where they will take it. Offline, it says “last known”."),
    ("Input", "Type an amount and press Enter: +5, -3, 1,000 (commas, spaces or _ between groups of three). "
     "Anything else is explained under the box and nothing is sent. A digit, + or - typed anywhere lands here."),
    ("People", "Who is here, you on top. Sort by a column (click it, or its key); filter by name. The line under "
     "the table shows the highlighted person exactly. Past a few hundred people the server sends the page in view."),
    ("History", "The total over the last minute, hour or day. When the total is too large to label, the chart "
     "shows its change since the start of the window (the axis says from what)."),
    ("Activity", "What happened, newest last. Scroll up to pause it (the title counts what is new); End follows "
     "again. Many joins at one moment are one line."),
    ("Status line", "Connected (with the round trip), reconnecting (with a countdown and why) or offline; "
     "your pending adds; your name and the server."),
)  # fmt: skip


def sections(app_bindings: Sequence[BindingType]) -> list[tuple[str, Sequence[BindingType]]]:
    """The keys, by where they work: anywhere (the app's), then each panel's."""
    return [
        ("Anywhere", app_bindings),
        ("People (F3)", [*ClientsTable.BINDINGS, *PeoplePanel.BINDINGS]),
        ("History (F2)", HistoryChart.BINDINGS),
        ("Activity (F4)", ActivityLog.BINDINGS),
    ]


def key_label(keys: str, display: str | None = None) -> str:
    """How a binding's keys read: ctrl+z, F1 ?, /."""
    if display:
        return display
    names = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-"}
    shown = [names.get(key, key.upper() if len(key) == 2 and key[0] == "f" else key) for key in keys.split(",")]
    return " ".join(shown)


def _bindings(bindings: Sequence[BindingType]) -> list[Binding]:
    return [binding for binding in bindings if isinstance(binding, Binding) and binding.description]


class HelpScreen(ModalScreen[None]):
    """``sections`` are (title, bindings) pairs: the app's keys, then each panel's."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close")]

    def __init__(self, sections: Sequence[tuple[str, Sequence[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label("Tally · help", id="help-title")
            yield Label("Esc closes · ↑↓ scroll · ctrl+p lists every command with its key", id="help-footer")
            with VerticalScroll(id="help-body"):
                yield Static(self.keys_table(), id="help-keys")
                yield Static(self._panels(), id="help-panels")

    def _panels(self) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_row("", "")
        table.add_row(Text("The panels", style="bold underline"), "")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        for title, text in PANELS:
            table.add_row(title, text)
        return table

    def keys_table(self) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True, min_width=10)
        table.add_column(ratio=1)
        for index, (title, bindings) in enumerate(self.sections):
            if index:
                table.add_row("", "")
            table.add_row(Text(title, style="bold underline"), "")
            for binding in _bindings(bindings):
                # Every key of the binding, not just the one the footer shows (F1 and ?).
                table.add_row(key_label(binding.key), binding.tooltip or binding.description)
        return table

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # the arrows scroll it

    def action_close(self) -> None:
        self.dismiss(None)
