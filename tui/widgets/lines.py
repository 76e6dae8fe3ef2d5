"""A RichLog that is cheap to write to under a stream of lines: the activity log's base.

RichLog, as Textual ships it, lays the whole screen out after every line written (its
virtual size is a reactive with ``layout=True``), updates its scrollbar each time, and
works its own style out from every ancestor's styles twice for each line it draws. A
log's box is the layout's whatever it holds, so here lines only repaint it; lines
written inside :meth:`LineLog.together` update the scrollbar once, at the end (showing
or hiding the scrollbar still lays out); and the style is worked out once a frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.style import Style
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.strip import Strip
from textual.widgets import RichLog

__all__ = ["LineLog"]


class LineLog(RichLog):
    # Some 12 ms a layout on a 2-core machine, twice a second under a stream of updates: none for lines.
    virtual_size = Reactive(Size(0, 0), layout=False)
    _batch = False  # lines are being written together: the scrollbar follows once they all are
    _style: Style | None = None  # the log's style, while a frame draws it

    @contextmanager
    def together(self) -> Iterator[None]:
        """Lines written in this block update the scrollbar once, at its end, not once each."""
        self._batch = True
        try:
            yield
        finally:
            self._batch = False
            self.watch_virtual_size(self.virtual_size)

    def watch_virtual_size(self, size: Size) -> None:
        if not self._batch and self.container_size:  # before the first layout, the layout does it
            self._scroll_update(size)

    def render_lines(self, crop: Region) -> list[Strip]:
        # Its style cannot change while a frame is drawn: once a frame, not twice a line.
        self._style = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._style = None

    @property
    def rich_style(self) -> Style:
        return self._style if self._style is not None else super().rich_style
