"""Helpers for driving the real dashboard with Textual's pilot."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.pilot import Pilot

from tally.tui.app import TallyApp
from tests.support import waiting


async def until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``condition`` holds; fail after ``timeout`` seconds."""
    await waiting.until(condition, timeout=timeout, what=what, poll=lambda: pilot.pause(0.02))


def table_names(app: TallyApp) -> list[str]:
    """The Name column as plain text, row by row."""
    table = app.dashboard.clients
    return [str(table.get_cell(row, "name")) for row in table.rows]


def log_text(app: TallyApp) -> str:
    """Everything in the activity log as plain text, a line per entry however the log wraps it."""
    return app.dashboard.activity.selected_text()


def cell(app: TallyApp, client_id: str, column: str) -> str:
    value = app.dashboard.clients.get_cell(client_id, column)
    return value.plain if isinstance(value, Text) else str(value)
