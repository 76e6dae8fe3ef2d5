"""The total over a window of time (the last minute, hour or day), for the history chart.

The server answers a history request with the total sampled over the window;
live updates extend it. Points are kept one per bucket (a window's
``POINTS``-th part), the last of each, so a flood of updates costs no more
memory than a quiet hour. Pure: the chart draws what :func:`chart_data` says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tally.server.protocol import HistoryPoint

__all__ = ["POINTS", "WINDOWS", "ChartData", "Series", "Window", "chart_data"]

# Points per window: more than a wide terminal can draw (braille has two dots a cell).
POINTS = 240
# Past this many characters the total's own tick labels would crowd the chart: plot the change instead.
ABSOLUTE_LABEL_WIDTH = 7


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    seconds: float
    key: str  # the chart's key for it
    label_format: str  # strftime, for the time axis
    redraw: float  # seconds between redraws when nothing changes: the axis slides with the clock


WINDOWS = {
    "minute": Window("minute", 60.0, "m", "%H:%M:%S", 1.0),
    "hour": Window("hour", 3600.0, "h", "%H:%M", 15.0),
    "day": Window("day", 86400.0, "d", "%H:%M", 300.0),
}


class Series:
    """The total over one window, oldest first, at most one point per bucket (plus one before the window)."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.points: list[HistoryPoint] = []
        # False until the server's history for the window arrived: until then only what we saw live.
        self.loaded = False

    @property
    def bucket(self) -> float:
        return self.window.seconds / POINTS

    def replace(self, points: Iterable[HistoryPoint], now: float) -> None:
        """Take the server's history; live points newer than its last are kept after it."""
        given = sorted(points, key=lambda point: point.seq)
        last = given[-1].seq if given else -1
        newer = [point for point in self.points if point.seq > last]
        self.points = []
        for point in (*given, *newer):
            self._append(point)
        self.loaded = True
        self.trim(now)

    def add(self, point: HistoryPoint) -> None:
        """A live update (in seq order)."""
        if self.points and point.seq <= self.points[-1].seq:
            return  # already known (the history answer raced the update)
        self._append(point)

    def _append(self, point: HistoryPoint) -> None:
        points = self.points
        if len(points) > 1 and int(points[-1].at // self.bucket) == int(point.at // self.bucket):
            points[-1] = point  # the last of each bucket stands for it
        else:
            points.append(point)

    def trim(self, now: float) -> None:
        """Drop points before the window, but the last of them: it says what the total was at the start."""
        start = now - self.window.seconds
        before = 0
        while before + 1 < len(self.points) and self.points[before + 1].at <= start:
            before += 1
        if before:
            del self.points[:before]


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart draws: x in seconds before now (negative), y relative to ``base``."""

    xs: list[float]
    ys: list[float]
    base: int  # 0 when the total itself is plotted; else the total at the start of the window
    low: int  # the lowest and highest y drawn (relative to base)
    high: int

    @property
    def relative(self) -> bool:
        return self.base != 0


def chart_data(series: Series, now: float) -> ChartData | None:
    """The total as steps across the window ending at ``now``; None if nothing is known yet.

    The total holds between updates, so each point is drawn as a step, and the
    last one runs on to now. When the totals are too wide to label (past a
    million or so), the change since the start of the window is plotted: a huge
    total moved by small adds stays readable.
    """
    start = now - series.window.seconds
    points = [point for point in series.points if point.at <= now]
    # Of the points before the window only the last counts: the total when the window starts
    # (the others, trimmed only when the server's history arrives, would pile up at its edge).
    first = max((index for index, point in enumerate(points) if point.at <= start), default=0)
    points = points[first:]
    if not points:
        return None
    xs: list[float] = []
    totals: list[int] = []
    for point in points:
        x = max(point.at, start) - now
        if totals:
            xs.append(x)
            totals.append(totals[-1])
        xs.append(x)
        totals.append(point.total)
    xs.append(0.0)
    totals.append(totals[-1])
    shown = [total for x, total in zip(xs, totals, strict=True) if x >= start - now]
    low, high = min(shown), max(shown)
    wide = max(len(f"{low:,}"), len(f"{high:,}")) > ABSOLUTE_LABEL_WIDTH
    base = totals[0] if wide else 0
    ys = [float(total - base) for total in totals]
    return ChartData(xs, ys, base, low - base, high - base)
