"""The total, big, with a flash when it moves and its recent history as a sparkline."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.renderables.digits import Digits as BigDigits
from textual.timer import Timer
from textual.widgets import Digits, Label, Sparkline

from server.protocol import HISTORY_POINTS

__all__ = ["TotalPanel"]

FLASH_SECONDS = 0.6


def group_digits(value: int) -> str:
    return f"{value:,}"


def compact(value: int) -> str:
    """A short form for totals too wide to draw big: 9.22E18."""
    mantissa, exponent = f"{value:.2E}".split("E")
    return f"{mantissa}E{int(exponent)}"


class TotalPanel(Vertical):
    """Shows ``total``; flashes green when it rises and red when it falls."""

    total: reactive[int | None] = reactive(None)
    seq: reactive[int] = reactive(0)
    # While offline: the total shown is the last known one; pending adds would take it further.
    stale: reactive[bool] = reactive(False)
    pending: reactive[int] = reactive(0)
    pending_amount: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._flash: Timer | None = None
        self.history: list[float] = []
        self.border_title = "Total"
        # Held, not queried: updates may still arrive while the app tears down.
        self.digits = Digits("…", id="total-digits")
        self.caption = Label("", id="total-caption", markup=False)
        self.sparkline = Sparkline([], id="total-history")

    def compose(self) -> ComposeResult:
        yield self.digits
        yield self.caption
        yield self.sparkline

    def show_history(self, totals: list[int]) -> None:
        self.history = [float(t) for t in totals][-HISTORY_POINTS:]
        self._render_history()

    def extend_history(self, totals: list[int]) -> None:
        self.history = (self.history + [float(t) for t in totals])[-HISTORY_POINTS:]
        self._render_history()

    def _render_history(self) -> None:
        # One point (or a flat line) would draw as a solid block: show a trend only.
        trend = len(set(self.history)) > 1
        self.sparkline.data = list(self.history) if trend else []

    def watch_total(self, old: int | None, new: int | None) -> None:
        self._render_total()
        if old is not None and new is not None and old != new:
            self.flash("-up" if new > old else "-down")

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
        updates = "no updates yet" if self.seq == 0 else f"after {self.seq:,} update{'s' if self.seq != 1 else ''}"
        if self.pending:
            projected = self.total + self.pending_amount
            updates = f"{self.pending:,} pending → {projected:,}"
        caption.update(updates if exact_fits else f"{text}  ·  {updates}")

    def flash(self, direction: str) -> None:
        self.remove_class("-up", "-down")
        self.add_class(direction)
        if self._flash is not None:
            self._flash.stop()
        self._flash = self.set_timer(FLASH_SECONDS, lambda: self.remove_class("-up", "-down"))
