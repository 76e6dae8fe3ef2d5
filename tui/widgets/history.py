"""The total against time over the last minute, hour or day, with a labelled y axis.

Drawn with textual-plotext (Textualize's wrapper of plotext): a maintained
plotting widget that follows the app's theme, draws braille lines and labels
its axes, so we do not draw charts by hand. We chose it over textual-plot
(which needs numpy) for its small footprint; a plot costs a few milliseconds
to build, so the chart redraws at most a few times a second however fast
updates come, and otherwise only as often as its time axis needs to slide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual.color import Color
from textual.message import Message
from textual_plotext import PlotextPlot

from tally.tui.numbers import compact, fit, ticks
from tally.tui.series import WINDOWS, Series, chart_data

__all__ = ["HistoryChart"]

# However fast updates come, the chart is rebuilt at most this often (a minute drawn on some 60 columns:
# once a second moves it by about a column).
MIN_REDRAW = 1.0
ORDER = list(WINDOWS)


def _time_label(at: float, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(at))


class HistoryChart(PlotextPlot):
    """Renders the series it is given; asks the app for another window with :class:`WindowChosen`."""

    can_focus = True
    BINDINGS = [
        Binding("m", "window('minute')", "Minute", tooltip="Chart the last minute"),
        Binding("h", "window('hour')", "Hour", tooltip="Chart the last hour"),
        Binding("d", "window('day')", "Day", tooltip="Chart the last day"),
        Binding("left", "step(-1)", "Shorter", show=False, tooltip="A shorter window"),
        Binding("right", "step(1)", "Longer", show=False, tooltip="A longer window"),
    ]

    @dataclass
    class WindowChosen(Message):
        name: str

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: Series | None = None
        self.empty = "waiting for the server"
        self._drawn_at = 0.0
        self._dirty = False
        self._built: tuple[object, RenderResult] | None = None
        self._generation = 0  # counts redraws: what was built for an older one is stale
        self._title()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(MIN_REDRAW, self._tick)
        # The line is drawn in the theme's accent (textual-plotext themes only the background and axes).
        self.app.theme_changed_signal.subscribe(self, lambda theme: self._redraw())

    def show(self, series: Series) -> None:
        """Draw ``series`` (soon: at most every ``MIN_REDRAW`` seconds)."""
        changed_window = self.series is None or self.series.window != series.window
        self.series = series
        if changed_window:
            self._title()  # only now: a new title repaints the whole chart
            self._redraw()
        else:
            self._dirty = True

    @property
    def settled(self) -> bool:
        """Nothing waits to be drawn."""
        return not self._dirty

    def _tick(self) -> None:
        # Redraw if something changed, or when the window has slid far enough to show it.
        series = self.series
        if series is None:
            return
        if self._dirty or time.monotonic() - self._drawn_at >= series.window.redraw:
            self._redraw()

    def render(self) -> RenderResult:
        series = self.series
        if series is None or not series.points:
            return Text(self.empty, style="dim", justify="center")
        if all(point.seq == 0 for point in series.points):
            return Text("no updates yet", style="dim", justify="center")
        if not series.loaded and len(series.points) < 2:
            return Text(f"asking the server for the last {series.window.name}…", style="dim", justify="center")
        # Building a plot takes milliseconds: build it when the data or the size changed, not on every repaint.
        key = (self._generation, self.size, self.app.theme)
        if self._built is None or self._built[0] != key:
            self._built = (key, super().render())
        return self._built[1]

    def _redraw(self) -> None:
        self._dirty = False
        self._drawn_at = time.monotonic()
        self._generation += 1
        self._plot_series()
        self.refresh()

    def _title(self) -> None:
        window = self.series.window.name if self.series is not None else "minute"
        self.border_title = "History"
        # The window shown, and the keys of the others (named too when there is room). Border titles are markup.
        roomy = self.size.width >= 40
        self.border_subtitle = " ".join(
            f"[reverse] {WINDOWS[name].key} {'last ' if roomy else ''}{name} [/]"
            if name == window
            else f"[b]{WINDOWS[name].key}[/]" + (f" {name}" if roomy else "")
            for name in ORDER
        )

    def on_resize(self) -> None:
        self._title()
        if self.series is not None:
            self._redraw()  # the labels, and how many the y axis holds, depend on the size

    def _plot_series(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        series = self.series
        now = time.time()
        data = None if series is None else chart_data(series, now)
        if series is None or data is None:
            plt.title(self.empty)
            return
        window = series.window
        plt.plot(data.xs, data.ys, marker="braille", color=Color.parse(self.app.theme_variables["accent"]).rgb)
        plt.xlim(-window.seconds, 0)
        # Clock times at the window's start, middle and end; in a narrow chart, its start and "now".
        if self.size.width >= 40:
            positions = [-window.seconds, -window.seconds / 2, 0.0]
            plt.xticks(positions, [_time_label(now + x, window.label_format) for x in positions])
        else:
            plt.xticks([-window.seconds, 0.0], [_time_label(now - window.seconds, window.label_format), "now"])
        short = self.size.height < 10  # a few rows (80x24): the plot gets them, with its lowest and highest only
        values = ticks(data.low, data.high, 1 if short else min(8, self.size.height // 4))  # a label every few rows
        if self.size.height < 6:
            values = values[-1:]  # a plot of a row or two: its two ends would be drawn on the same row
        positions_y = [float(value) for value in values]
        plt.ylim(data.low, data.high if data.high > data.low else data.low + 1)
        if data.relative:
            plt.yticks(positions_y, [fit(value, 7, signed=True) for value in values])
            plt.ylabel("" if short else f"change since {_time_label(now - window.seconds, window.label_format)} "
                       f"(from {data.base:,})")  # fmt: skip
        else:
            plt.yticks(positions_y, [f"{value:,}" if abs(value) < 10_000 else compact(value) for value in values])
            plt.ylabel("" if short else "total")

    def action_window(self, name: str) -> None:
        self.post_message(self.WindowChosen(name))

    def action_step(self, step: int) -> None:
        current = ORDER.index(self.series.window.name) if self.series is not None else 0
        self.post_message(self.WindowChosen(ORDER[max(0, min(len(ORDER) - 1, current + step))]))
