"""The total over a window of time, for the history chart: tui.series."""

from __future__ import annotations

from tally.server.protocol import HistoryPoint
from tally.tui.series import POINTS, WINDOWS, Series, chart_data

NOW = 1_000_000.0


def point(seq: int, at: float, total: int) -> HistoryPoint:
    return HistoryPoint(seq=seq, at=at, total=total)


def test_a_flood_of_updates_keeps_one_point_per_bucket() -> None:
    """3,000 updates in a minute keep at most POINTS points, the last of each bucket."""
    series = Series(WINDOWS["minute"])
    for n in range(3000):
        series.add(point(n + 1, NOW - 60 + n * 0.02, n))
    assert len(series.points) <= POINTS + 1
    assert series.points[-1] == point(3000, NOW - 60 + 2999 * 0.02, 2999)


def test_the_servers_history_is_followed_by_newer_live_points() -> None:
    """replace takes the server's points, keeps live ones newer than its last, and drops repeats."""
    series = Series(WINDOWS["hour"])
    series.add(point(10, NOW - 100, 100))  # buckets of the hour are 15 s
    series.add(point(11, NOW - 1, 101))
    series.replace([point(2, NOW - 3000, 50), point(10, NOW - 100, 100)], NOW)
    assert [p.seq for p in series.points] == [2, 10, 11] and series.loaded
    series.add(point(11, NOW - 1, 101))  # an update the answer raced: not twice
    assert [p.seq for p in series.points] == [2, 10, 11]


def test_points_before_the_window_are_dropped_but_the_last_of_them() -> None:
    """The last point before the window says what the total was when the window starts."""
    series = Series(WINDOWS["minute"])
    for seq, at in enumerate((NOW - 500, NOW - 300, NOW - 100, NOW - 30), start=1):
        series.add(point(seq, at, seq * 10))
    series.trim(NOW)
    assert [p.seq for p in series.points] == [3, 4]


def test_the_chart_draws_steps_from_the_start_of_the_window_to_now() -> None:
    """The total holds between updates: steps, the first clamped to the window, the last running on to now."""
    series = Series(WINDOWS["minute"])
    series.replace([point(1, NOW - 500, 10), point(2, NOW - 30, 15)], NOW)
    data = chart_data(series, NOW)
    assert data is not None and not data.relative
    assert list(zip(data.xs, data.ys, strict=True)) == [(-60, 10), (-30, 10), (-30, 15), (0, 15)]
    assert (data.low, data.high) == (10, 15)


def test_a_huge_total_moved_by_small_adds_is_charted_as_its_change() -> None:
    """Past a million the change since the window's start is plotted, from the base the axis names."""
    base = 9_223_372_036_854_000_000
    series = Series(WINDOWS["minute"])
    series.replace([point(1, NOW - 50, base), point(2, NOW - 10, base + 7)], NOW)
    data = chart_data(series, NOW)
    assert data is not None and data.relative and data.base == base
    assert (data.low, data.high, data.ys[-1]) == (0, 7, 7.0)


def test_live_points_long_before_the_window_do_not_pile_up_at_its_edge() -> None:
    """A spike (a huge add undone at once) minutes ago is outside the minute window: not drawn at its edge."""
    series = Series(WINDOWS["minute"])
    series.replace([point(1, NOW - 600, 5)], NOW - 590)
    series.add(point(2, NOW - 200, 10**12))
    series.add(point(3, NOW - 198, 5))
    series.add(point(4, NOW - 10, 6))
    data = chart_data(series, NOW)
    assert data is not None and (data.low, data.high) == (5, 6)
    assert data.xs[0] == -60 and data.ys[0] == 5


def test_nothing_known_draws_nothing() -> None:
    """No point at all: no chart (the widget says it is waiting)."""
    assert chart_data(Series(WINDOWS["day"]), NOW) is None
