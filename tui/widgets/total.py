"""The total, big, with a small marker of its last change, and a flash now and then.

Under a flood of updates a panel that flashes with each one is unreadable and
costs a repaint of the whole panel each time: it flashes only when the total
moves after a quiet while, and the marker (▲ +5) says the rest.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.renderables.digits import Digits as BigDigits
from textual.timer import Timer
from textual.widgets import Digits, Label

from tally.tui.numbers import compact

__all__ = ["TotalPanel", "compact", "group_digits"]

FLASH_SECONDS = 0.6
# At most one flash in this long: a steady stream of updates flashes once, not continuously.
FLASH_EVERY = 5.0


def group_digits(value: int) -> str:
    return f"{value:,}"


class TotalPanel(Vertical):
    """Shows ``total``; flashes green when it rises and red when it falls (at most every ``FLASH_EVERY`` s)."""

    total: reactive[int | None] = reactive(None)
    seq: reactive[int] = reactive(0)
    # While offline: the total shown is the last known one; pending adds would take it further.
    stale: reactive[bool] = reactive(False)
    pending: reactive[int] = reactive(0)
    pending_amount: reactive[int] = reactive(0)

    ALLOW_SELECT = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._flash: Timer | None = None
        self._flashed_at = -FLASH_EVERY
        self.change = 0  # the last change of the total, for the marker
        self._exact_fitted: bool | None = None
        self.border_title = "Total"
        # Held, not queried: updates may still arrive while the app tears down.
        self.digits = Digits("…", id="total-digits")
        self.caption = Label("", id="total-caption", markup=False)

    def compose(self) -> ComposeResult:
        yield self.digits
        yield self.caption

    def reset(self, total: int | None, seq: int) -> None:
        """A snapshot (a welcome): shown as it is, with no change marker or flash (it is not a change)."""
        self.change = 0
        self.set_reactive(TotalPanel.total, total)
        self.set_reactive(TotalPanel.seq, seq)
        self._render_total()

    def watch_total(self, old: int | None, new: int | None) -> None:
        if old is not None and new is not None and old != new:
            self.change = new - old
            self.flash("-up" if new > old else "-down")
        self._render_total()

    def watch_seq(self) -> None:
        self._render_total()

    def watch_stale(self, stale: bool) -> None:
        self.set_class(stale, "-stale")
        self.border_title = "Total · last known" if stale else "Total"
        self._render_total()

    def watch_pending(self) -> None:
        self._render_total()

    def on_resize(self) -> None:
        self._render_total()

    def _render_total(self) -> None:
        digits, caption = self.digits, self.caption
        if self.total is None:
            digits.update("…")
            caption.update("waiting for the server")
            return
        text = group_digits(self.total)
        exact_fits = BigDigits.get_width(text) <= max(self.content_size.width, 1)
        digits.update(text if exact_fits else compact(self.total))
        line = Text()
        if self.change:
            up = self.change > 0
            line.append(f"{'▲' if up else '▼'} {self.change:+,}", style="bold green" if up else "bold red")
            line.append(" · ")
        if self.pending:
            line.append(f"{self.pending:,} pending → {self.total + self.pending_amount:,}", style="bold")
        elif self.seq:
            line.append(f"{self.seq:,} update{'s' if self.seq != 1 else ''}")
        else:
            line.append("no updates yet")
        if not exact_fits:
            line = Text.assemble(text, "\n", line)  # the exact value, under its short form
        # A new layout only when the caption gains or loses a line: under a flood, layouts are the cost.
        caption.update(line, layout=exact_fits != self._exact_fitted)
        self._exact_fitted = exact_fits

    def flash(self, direction: str) -> None:
        now = time.monotonic()
        if now - self._flashed_at < FLASH_EVERY:
            return
        self._flashed_at = now
        self.remove_class("-up", "-down")
        self.add_class(direction)
        if self._flash is not None:
            self._flash.stop()
        self._flash = self.set_timer(FLASH_SECONDS, lambda: self.remove_class("-up", "-down"))
