"""The connection status line: connected with latency, reconnecting with a countdown, or offline."""

from __future__ import annotations

import math
import time
from typing import Literal

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tally.tui.text import plain_text

__all__ = ["StatusBar"]

State = Literal["connecting", "connected", "reconnecting", "offline"]


class StatusBar(Static):
    state: reactive[State] = reactive("connecting")
    latency: reactive[float | None] = reactive(None)
    pending: reactive[int] = reactive(0)
    retry_at: reactive[float] = reactive(0.0)
    reason: reactive[str] = reactive("")
    url: reactive[str] = reactive("")
    name: reactive[str] = reactive("")

    def on_mount(self) -> None:
        # Only the countdown needs a clock; everything else repaints when it changes.
        self.set_interval(0.5, self._tick)

    def _tick(self) -> None:
        if self.state == "reconnecting":
            self.refresh()

    def watch_state(self, state: State) -> None:
        for name in ("connecting", "connected", "reconnecting", "offline"):
            self.set_class(state == name, f"-{name}")

    def render(self) -> Text:
        text = Text()
        if self.state == "connected":
            text.append("● connected", style="bold")
            if self.latency is not None:
                text.append(f" · {self.latency * 1000:.0f} ms")
        elif self.state == "connecting":
            text.append("◌ connecting…", style="bold")
        elif self.state == "reconnecting":
            seconds = max(0, math.ceil(self.retry_at - time.monotonic()))
            text.append(f"◌ reconnecting in {seconds} s", style="bold")
            text.append(f" · {plain_text(self.reason, limit=60)}")
        else:
            text.append("✕ offline", style="bold")
            text.append(f" · {plain_text(self.reason, limit=60)} · ctrl+r to retry")
        if self.pending:
            text.append(f" · {self.pending} pending", style="bold")
        who = Text()
        if self.name:
            who.append(f"  {plain_text(self.name, limit=32)}", style="bold")
        where = Text(f" @ {plain_text(self.url, limit=60)}", style="dim")
        # Who and where only as far as they fit whole: the state comes first.
        room = self.content_size.width or 200
        for part in (who, where):
            if text.cell_len + part.cell_len <= room:
                text.append_text(part)
        return text
