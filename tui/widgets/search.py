"""The log's search box: opened with /, at the bottom of the screen as in less and vim.

Every match is highlighted in the log as it is typed; Enter keeps the search and
goes to the log, where n and N go from one match to the next; Esc closes it and
clears the highlights.
"""

from __future__ import annotations

from textual import on
from textual.widgets import Input

from tally.tui.widgets.activity import ActivityLog

__all__ = ["SearchBox"]


class SearchBox(Input):
    """Searches ``log``; shown while the screen has the ``-searching`` class."""

    def __init__(self, log: ActivityLog, *, id: str | None = None) -> None:
        super().__init__(placeholder="search the log · Enter: keep · n/N: next, previous · Esc: close", id=id)
        self.log_widget = log

    def open(self) -> None:
        self.screen.add_class("-searching")
        self.value = self.log_widget.needle
        self.focus()

    def close(self, *, keep: bool) -> None:
        self.screen.remove_class("-searching")
        if not keep:
            self.value = ""
            self.log_widget.search("")

    @property
    def is_open(self) -> bool:
        return self.screen.has_class("-searching")

    @on(Input.Changed)
    def typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.is_open:
            self.log_widget.search(event.value)

    @on(Input.Submitted)
    def kept(self, event: Input.Submitted) -> None:
        event.stop()
        self.close(keep=bool(event.value.strip()))
        self.log_widget.focus()
