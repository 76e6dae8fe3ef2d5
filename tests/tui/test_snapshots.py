"""The look of the dashboard, guarded by SVG snapshots (pytest-textual-snapshot).

The app is fed the same messages its connection would post, with fixed ids,
addresses and clock, so the pictures change only when the look does.
Update them deliberately with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tally.server.protocol import ClientInfo, ClientsPage, Error, HistoryPage, HistoryPoint, Presence, Update, Welcome
from tally.tui.app import TallyApp, make_app
from tally.tui.link import LinkOptions
from tally.tui.messages import (
    ClientsPageArrived,
    Connected,
    ConnectionLost,
    GaveUp,
    HistoryArrived,
    LatencyMeasured,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tests.support.dashboard import until
from tests.support.waiting import until as wait_until

NOON = 1_795_521_600.0  # 2026-11-24 12:00:00 UTC
MONOTONIC = 1000.0
SIZES = [(40, 15), (60, 20), (80, 24), (120, 36), (200, 60)]
size_id = lambda size: f"{size[0]}x{size[1]}"  # noqa: E731

CLIENTS = (
    ClientInfo(id="a1", name="alice", since=NOON - 3600, added=1234, tag="a1b2"),
    ClientInfo(id="b2", name="bob", since=NOON - 600, added=-34, tag="b2c3"),
    ClientInfo(id="c3", name="[b]carol[/b]", since=NOON - 60, added=0, tag="c3d4"),
    ClientInfo(id="d4", name="dmitri", since=NOON - 7200, added=55_912_345_678, tag="d4e5"),
    ClientInfo(id="e5", name="eun-ji", since=NOON - 1500, added=-250, tag="e5f6"),
    ClientInfo(id="f6", name="françois", since=NOON - 45, added=17, tag="f6a7"),
)


def walk(seed: int, count: int, start: int, step: int) -> list[int]:
    """Totals as a room makes them: mostly small adds, now and then a larger one, up more than down."""
    chance, totals = random.Random(seed), [start]
    for _ in range(count - 1):
        totals.append(totals[-1] + chance.choice([1, 1, 2, 5, -1, -2, 10, -5, 25]) * step)
    return totals


# The last minute of a busy room.
HISTORY = tuple(HistoryPoint(seq=n + 1, at=NOON - 59 + n * 0.6, total=t) for n, t in enumerate(walk(7, 99, 900, 3)))


class FrozenTime:
    """Stands in for the ``time`` module in the widgets: a fixed clock, in UTC."""

    @staticmethod
    def localtime(at: float | None = None) -> time.struct_time:
        return time.gmtime(NOON if at is None else at)

    @staticmethod
    def monotonic() -> float:
        return MONOTONIC

    strftime = staticmethod(time.strftime)

    @staticmethod
    def time() -> float:
        return NOON


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (
        "tally.tui.widgets.entries",
        "tally.tui.notes",
        "tally.tui.widgets.clients",
        "tally.tui.widgets.status",
        "tally.tui.widgets.history",
        "tally.tui.widgets.total",
        "tally.tui.model",
        "tally.tui.screens.dashboard",
    ):
        monkeypatch.setattr(f"{module}.time", FrozenTime)


def connected(app: TallyApp) -> None:
    last = HISTORY[-1].total
    app.post_event(Connected(Welcome(you="a1", total=last, seq=99, clients=CLIENTS, history=HISTORY)))
    app.post_event(LatencyMeasured(0.003))
    app.post_event(PresenceChanged([Presence(event="joined", client=CLIENTS[2])]))
    app.post_event(
        UpdatesArrived(
            [
                Update(seq=100, total=last + 42, amount=42, name="alice", client="a1", op="1", at=NOON - 1),
                Update(seq=101, total=last + 30, amount=-12, name="bob", client="b2", op="9", at=NOON - 0.5),
            ]
        )
    )


def scenario(*steps: Callable[[TallyApp], Awaitable[object] | None]) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TallyApp)
        # The app is ready before its default screen, the dashboard, has composed its panels.
        await until(pilot, lambda: len(app.dashboard.entry.query(Input)) > 0, what="composed")
        for box in app.dashboard.query(Input):  # the amount and the people filter: a blinking cursor
            box.cursor_blink = False  # would make pictures differ (by when each was taken, on a busy machine)
        for step in steps:
            result = step(app)
            if result is not None:
                await result
            await pilot.pause()
            await until(
                pilot,
                lambda: (
                    app.dashboard.chart.settled
                    and app.dashboard.activity.settled
                    and app.dashboard.clients.settled
                    and app.dashboard.total.settled
                ),
                what="drawn",
            )
        await until(
            pilot,
            lambda: not app.dashboard.total.has_class("-up") and not app.dashboard.total.has_class("-down"),
            what="no flash",
        )
        await pilot.pause()

    return run_before


def reconnecting(app: TallyApp) -> None:
    app.post_event(ConnectionLost("the server is restarting", MONOTONIC + 12, 3))
    for amount in (5, -3):
        app.link.pending.add(amount, at=MONOTONIC)  # typed while offline (the log's lines are not the picture)
    app.dashboard.show_pending()


def refused(app: TallyApp) -> None:
    app.post_event(ServerRefused(Error(code="overflow", message="the total would leave the 64-bit range", op="7")))


def offline(app: TallyApp) -> None:
    app.post_event(GaveUp("the server refused the connection (HTTP 401)"))


def typed_invalid(app: TallyApp) -> None:
    app.dashboard.entry.query_one(Input).value = "12abc"


def large_room(app: TallyApp) -> None:
    """Ten thousand people: the welcome lists nobody; the page in view comes from the server."""
    welcome = Welcome(you="a1", total=2**62 + 1234, seq=5_000_000, clients=(), history=(), online=10_000, live=False,
                      added=1234)  # fmt: skip
    app.dashboard.pager.request = lambda offset, limit, view: "q-snapshot"  # not connected: stands in for the link
    app.post_event(Connected(welcome))
    app.post_event(LatencyMeasured(0.041))


def server_page(app: TallyApp) -> None:
    """Answer the table's latest request with people #N (sorted by name)."""
    asked = app.dashboard.pager.asked
    assert asked is not None, "the table asked for a page"
    offset = max(0, app.dashboard.clients.view.offset - app.dashboard.clients.view.limit)
    people = tuple(
        ClientInfo(id=f"p{n}", name=f"person {n:05d}", since=NOON - n, added=n * 1_000_003, tag=f"{n:04x}")
        for n in range(offset, offset + app.dashboard.clients.view.limit * 3)
    )
    app.post_event(ClientsPageArrived(ClientsPage(id=asked.id, offset=offset, total=10_000, clients=people)))


HOUR_OF_A_HUGE_TOTAL = tuple(
    HistoryPoint(seq=n + 1, at=NOON - 3590 + n * 36, total=t) for n, t in enumerate(walk(3, 100, 2**63 - 90_000, 7))
)


def huge_total_hour(app: TallyApp) -> None:
    """The hour window, a total near the 64-bit limit moved by small adds: the chart shows the change."""
    points = HOUR_OF_A_HUGE_TOTAL
    app.post_event(Connected(Welcome(you="a1", total=points[-1].total, seq=99, clients=CLIENTS, history=points)))
    app.dashboard.chart.action_window("hour")


async def hour_answered(app: TallyApp) -> None:
    await wait_until(lambda: app.model.series.window.name == "hour", what="the hour window chosen")
    asked = app.dashboard._history_request = "h-snapshot"  # not connected: stands in for the link's request id
    app.post_event(HistoryArrived(HistoryPage(id=asked, points=HOUR_OF_A_HUGE_TOTAL)))


def new_app() -> TallyApp:
    return make_app(LinkOptions("ws://127.0.0.1:8765", "alice"), autoconnect=False)


@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_connected(snap_compare: Any, size: tuple[int, int]) -> None:
    """Total, history, people with you on top, activity, and latency; stacked below 80x24."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected))


@pytest.mark.parametrize("size", [(80, 24), (40, 15)], ids=size_id)
def test_reconnecting(snap_compare: Any, size: tuple[int, int]) -> None:
    """The countdown, the reason and the pending adds."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected, reconnecting))


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=size_id)
def test_error(snap_compare: Any, size: tuple[int, int]) -> None:
    """A refusal from the server: a notification, a log line, and an inline input error."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected, refused, typed_invalid))


def test_offline(snap_compare: Any) -> None:
    """Refused for good: offline, with how to retry."""
    assert snap_compare(new_app(), terminal_size=(80, 24), run_before=scenario(offline))


@pytest.mark.parametrize("size", [(80, 24), (40, 15)], ids=size_id)
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    """F1 (or ?) explains each panel and lists the app's own keys."""
    assert snap_compare(new_app(), terminal_size=size, press=["f1"], run_before=scenario(connected))


@pytest.mark.parametrize("size", [(31, 15), (80, 11)], ids=size_id)
def test_too_small(snap_compare: Any, size: tuple[int, int]) -> None:
    """Below 32x12: a clear message instead of a broken screen."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected))


@pytest.mark.parametrize("size", [(60, 20), (40, 15), (120, 20)], ids=size_id)
def test_stacked_people(snap_compare: Any, size: tuple[int, int]) -> None:
    """On a small screen F3 shows the people instead of the log; the total and the input stay."""
    assert snap_compare(new_app(), terminal_size=size, press=["f3"], run_before=scenario(connected))


def test_stacked_history(snap_compare: Any) -> None:
    """On a small screen F2 shows the chart."""
    assert snap_compare(new_app(), terminal_size=(60, 20), press=["f2"], run_before=scenario(connected))


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=size_id)
def test_large_room(snap_compare: Any, size: tuple[int, int]) -> None:
    """10,000 online: the exact count, a page from the server, you on top; a huge total in short form."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(large_room, server_page))


def test_people_sorted_and_filtered(snap_compare: Any) -> None:
    """Sorted by added (descending), filtered by name; a number too wide for its column is compact."""

    def sort_and_filter(app: TallyApp) -> None:
        app.dashboard.action_show("people")
        app.dashboard.clients.action_sort("added")
        app.dashboard.people.action_filter()
        app.dashboard.people.filter_box.value = "i"

    assert snap_compare(new_app(), terminal_size=(80, 24), run_before=scenario(connected, sort_and_filter))


def test_history_of_a_huge_total(snap_compare: Any) -> None:
    """The hour window of a total near 2**63 moved by small adds: the change is plotted, labelled from what."""
    assert snap_compare(new_app(), terminal_size=(120, 36), run_before=scenario(huge_total_hour, hour_answered))


def test_log_filtered_and_paused(snap_compare: Any) -> None:
    """Adds only, scrolled up: following pauses and the title counts what is new."""

    def busy(app: TallyApp) -> None:
        app.dashboard.activity.set_filter("adds")
        total = app.model.total or 0
        updates = [Update(seq=101 + n, total=total + n, amount=1, name="bob", client="b2", op=str(n), at=NOON - 0.4)
                   for n in range(1, 20)]  # fmt: skip
        app.post_event(UpdatesArrived(updates))

    def scrolled_up_then_more(app: TallyApp) -> None:
        app.dashboard.activity.scroll_home(animate=False, immediate=True)
        total = app.model.total or 0
        more = [Update(seq=120 + n, total=total + n, amount=1, name="eun-ji", client="e5", op=str(n), at=NOON - 0.2)
                for n in range(1, 4)]  # fmt: skip
        app.post_event(UpdatesArrived(more))

    assert snap_compare(new_app(), terminal_size=(80, 24), run_before=scenario(connected, busy, scrolled_up_then_more))


# Three people called sam (one leaves): told apart by their tags everywhere.
CLASH = (
    *CLIENTS[:2],
    ClientInfo(id="s1", name="sam", since=NOON - 900, added=12, tag="5a11"),
    ClientInfo(id="s2", name="sam", since=NOON - 300, added=-4, tag="9c3e"),
    ClientInfo(id="s3", name="sam", since=NOON - 200, added=0, tag="77d0"),
)
TOTALS = {"7-digit": 1_003_595, "19-digit": 9_000_000_000_000_000_000}
ISSUE_SIZES = [(80, 24), (100, 30), (120, 40), (60, 20), (40, 15)]


def busy_room(total: int) -> Callable[[TallyApp], None]:
    """A total of ``total``, three sams (one just added, one left), two adds pending, an error under the input."""

    def run(app: TallyApp) -> None:
        points = tuple(HistoryPoint(seq=n + 1, at=NOON - 59 + n, total=total - 60 + n) for n in range(60))
        app.post_event(Connected(Welcome(you="a1", total=total, seq=60, clients=CLASH, history=points)))
        app.post_event(LatencyMeasured(0.004))
        app.post_event(UpdatesArrived([Update(seq=61, total=total + 7, amount=7, name="sam", client="s2", op="3",
                                              at=NOON - 1, tag="9c3e")]))  # fmt: skip
        app.post_event(PresenceChanged([Presence(event="left", client=CLASH[4])]))
        for amount in (5, 20):
            app.link.pending.add(amount, at=MONOTONIC)
        app.dashboard.show_pending()
        app.dashboard.entry.query_one(Input).value = "1,00"  # commas must group three digits

    return run


@pytest.mark.parametrize("total", TOTALS, ids=str)
@pytest.mark.parametrize("size", ISSUE_SIZES, ids=size_id)
def test_the_total_names_and_messages_at_each_size(snap_compare: Any, size: tuple[int, int], total: str) -> None:
    """Any size: the total readable (in full up to twelve digits at 80x24, else with its scale's word), the pending
    adds and where they lead, the sams told apart by tag, and the whole explanation under the input."""
    app = new_app()

    async def settle_presence(app: TallyApp) -> None:
        app.dashboard.activity.write_presence()  # the leave, at once (it waits a moment to group with others)

    assert snap_compare(app, terminal_size=size, run_before=scenario(busy_room(TOTALS[total]), settle_presence))
