"""The connection status line: connected with latency, reconnecting with a countdown, or offline.

Connected to a server whose store is away, it is not green: it says since when the
store has been away and how many adds wait (they go by themselves when it is back).
"""

from __future__ import annotations

import math
import time
from typing import Literal

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tally.server.protocol import StoreStatus
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
    # The server's store, when it is not available (None: it takes adds).
    store: reactive[StoreStatus | None] = reactive(None)

    def on_mount(self) -> None:
        # Only the countdown needs a clock; everything else repaints when it changes.
        self.set_interval(0.5, self._tick)

    def _tick(self) -> None:
        if self.state == "reconnecting":
            self.refresh()

    def watch_state(self, state: State) -> None:
        for name in ("connecting", "connected", "reconnecting", "offline"):
            self.set_class(state == name, f"-{name}")
        self._store_classes()

    def watch_store(self) -> None:
        self._store_classes()

    def _store_classes(self) -> None:
        away = self.state == "connected" and self.store is not None
        self.set_class(away and self.store is not None and self.store.state == "unavailable", "-store-away")
        self.set_class(away and self.store is not None and self.store.state == "rewound", "-store-lost")

    def render(self) -> Text:
        text = Text()
        store = self.store
        if self.state == "connected" and store is not None:
            since = time.strftime("%H:%M", time.localtime(store.since))
            if store.state == "rewound":
                text.append(f"✕ store lost updates at {since}", style="bold")
            else:
                text.append(f"▲ store away since {since}", style="bold")
            text.append(f" · {self.pending:,} waiting" if self.pending else " · adds wait for it", style="bold")
        elif self.state == "connected":
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
        if self.pending and (store is None or self.state != "connected"):
            text.append(f" · {self.pending:,} pending", style="bold")
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
