"""Helpers for driving the real dashboard with Textual's pilot."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.pilot import Pilot

from tally.tui.app import TallyApp
from tally.tui.inbox import Timer
from tally.tui.messages import Event
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


_CELL = re.compile(r'<text class="terminal-[^"]*" x="([\d.]+)" y="[\d.]+"[^>]*-line-(\d+)\)">([^<]*)</text>')
_WORD = re.compile(r"[^\s\u2500-\u259f]+")  # words: not spaces, box drawing or blocks (borders)


def screen_text(app: TallyApp) -> str:
    """What the terminal shows now, as lines of text (read from Textual's own screenshot of it)."""
    rows: dict[int, list[tuple[float, str]]] = {}
    for x, line, text in _CELL.findall(app.export_screenshot()):
        rows.setdefault(int(line), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return "\n".join("".join(text for _, text in sorted(rows.get(n, []))) for n in range(max(rows, default=-1) + 1))


def reads_in_order(screen: str, text: str) -> bool:
    """True if the words of ``text`` are on ``screen`` in reading order (wrapped anyhow, with anything between)."""
    seen = iter(_WORD.findall(screen))
    return all(any(word == other for other in seen) for word in _WORD.findall(text))


class Recorder:
    """Everything a dashboard was told and showed: the link's events, its toasts, the store probes it made."""

    def __init__(self, app: TallyApp) -> None:
        self.events: list[Event] = []
        self.toasts: list[str] = []
        self.probes = 0
        post, notify, probe = app.post_event, app.notify, app.link.inbox.probe

        def posting(event: Event) -> None:
            self.events.append(event)
            post(event)

        def notifying(message: str, **options: Any) -> None:
            self.toasts.append(str(message))
            notify(message, **options)

        def probing(outage: int) -> Timer | None:
            self.probes += 1
            return probe(outage)

        app.link.post = posting
        app.notify = notifying  # type: ignore[method-assign]
        app.link.inbox.probe = probing  # type: ignore[method-assign]

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]
