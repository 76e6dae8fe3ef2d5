"""The total, big: the dashboard's hero. Under it, its last change and what waits.

The big digits show the exact total whenever it fits (at 80x24, any total up to twelve
digits, with its sign); beyond, three significant digits and, on the line under them,
the word of their scale with the exact value (9.22 / quintillion · 9,223,372,036,854,775,807).
The caption wraps: nothing is ever cut.

The marker (▲ +5 by bob) is the last add itself, taken from the updates (the dashboard
passes it), never a difference between two repaints: every screen that saw the same
history shows the same marker, however its repaints fell. Under a flood the panel
flashes only when the total moves after a quiet while.
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

from tally.tui.colours import themed
from tally.tui.numbers import compact_words

__all__ = ["Marker", "TotalPanel"]

FLASH_SECONDS = 0.6
# The total is drawn again at most this often: under 30 updates a second, each one drawn would be a frame of
# its own (the digits, the caption, the panel) for changes nobody can read; the first change after a quiet
# while is drawn at once, the last of a burst within this long.
DRAW_EVERY = 0.25
# At most one flash in this long: a steady stream of updates flashes once, not continuously.
FLASH_EVERY = 5.0

# The last add: its amount, and who made it (their tag too when their name is shared).
Marker = tuple[int, str]


class TotalPanel(Vertical):
    """Shows ``total``; flashes green when it rises and red when it falls (at most every ``FLASH_EVERY`` s).

    Its values do not repaint the panel itself (a border): only its digits and caption are drawn again, at
    most every ``DRAW_EVERY`` seconds.
    """

    total: reactive[int | None] = reactive(None, repaint=False)
    seq: reactive[int] = reactive(0, repaint=False)
    marker: reactive[Marker | None] = reactive(None, repaint=False)
    # While offline: the total shown is the last known one; pending adds would take it further.
    stale: reactive[bool] = reactive(False, repaint=False)
    pending: reactive[int] = reactive(0, repaint=False)
    pending_amount: reactive[int] = reactive(0, repaint=False)

    ALLOW_SELECT = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._flash: Timer | None = None
        self._flashed_at = -FLASH_EVERY
        self._lines = 0  # lines in the caption, last drawn: a new layout only when that changes
        self._drawn_at = -DRAW_EVERY
        self._draw: Timer | None = None
        self.border_title = "Total"
        # Held, not queried: updates may still arrive while the app tears down.
        self.digits = Digits("…", id="total-digits")
        self.caption = Label("", id="total-caption", markup=False)

    def compose(self) -> ComposeResult:
        yield self.digits
        yield self.caption

    def reset(self, total: int | None, seq: int, marker: Marker | None) -> None:
        """A snapshot (a welcome): shown as it is, with its last add as the marker, and no flash."""
        self.set_reactive(TotalPanel.total, total)
        self.set_reactive(TotalPanel.seq, seq)
        self.set_reactive(TotalPanel.marker, marker)
        self._render_total()

    def watch_total(self, old: int | None, new: int | None) -> None:
        if old is not None and new is not None and old != new:
            self.flash("-up" if new > old else "-down")
        self._soon()

    def watch_seq(self) -> None:
        self._soon()

    def watch_marker(self) -> None:
        self._soon()

    def watch_stale(self, stale: bool) -> None:
        self.set_class(stale, "-stale")
        self.border_title = "Total · last known" if stale else "Total"
        self._render_total()

    def watch_pending(self) -> None:
        self._soon()

    def watch_pending_amount(self) -> None:
        self._soon()

    def on_resize(self) -> None:
        self._render_total()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda theme: self._render_total())

    @property
    def settled(self) -> bool:
        """Nothing waits to be drawn."""
        return self._draw is None

    def _soon(self) -> None:
        """Draw now if the last drawing was a while ago, else once ``DRAW_EVERY`` has passed since it."""
        if self._draw is not None:
            return
        wait = self._drawn_at + DRAW_EVERY - time.monotonic()
        if wait <= 0:
            self._render_total()
        else:
            self._draw = self.set_timer(wait, self._render_total)

    def _render_total(self) -> None:
        if self._draw is not None:
            self._draw.stop()
            self._draw = None
        self._drawn_at = time.monotonic()
        digits, caption = self.digits, self.caption
        if self.total is None:
            digits.update("…")
            caption.update("waiting for the server")
            return
        exact = f"{self.total:,}"
        width = max(self.content_size.width, 1)
        lines = []
        if BigDigits.get_width(exact) <= width:
            digits.update(exact)
        else:
            number, word = compact_words(self.total)
            digits.update(number)
            lines.append(Text(f"{word} · {exact}", style="bold"))
        lines.append(self._news())
        text = themed(Text("\n").join(lines), self.app.theme_variables)
        # A new layout only when the caption may have gained or lost a line: under a flood, layouts are the cost.
        count = sum(-(-max(1, line.cell_len) // width) for line in lines)
        caption.update(text, layout=count != self._lines)
        self._lines = count

    def _news(self) -> Text:
        """The last add, and what waits (or how many updates made the total)."""
        line = Text()
        if self.marker is not None:
            amount, who = self.marker
            up = amount > 0
            line.append(f"{'▲' if up else '▼'} {amount:+,}", style="bold green" if up else "bold red")
            line.append(f" by {who}" if who else "")
            line.append(" · ")
        if self.pending:
            assert self.total is not None
            line.append(f"{self.pending:,} pending → {self.total + self.pending_amount:,}", style="bold")
        elif self.seq:
            line.append(f"{self.seq:,} update{'s' if self.seq != 1 else ''}")
        else:
            line.append("no updates yet")
        return line

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
