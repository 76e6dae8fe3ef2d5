"""The look of the dashboard, guarded by SVG snapshots (pytest-textual-snapshot).

The app is fed the same messages its connection would post, with fixed ids,
addresses and clock, so the pictures change only when the look does.
Update them deliberately with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from server.protocol import ClientInfo, Error, HistoryPoint, Presence, Update, Welcome
from tests.support.dashboard import until
from tui.app import TallyApp
from tui.messages import (
    Connected,
    ConnectionLost,
    GaveUp,
    LatencyMeasured,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)

NOON = 1_795_521_600.0  # 2026-11-24 12:00:00 UTC
MONOTONIC = 1000.0
SIZES = [(80, 24), (120, 36)]

CLIENTS = (
    ClientInfo(id="a1", name="alice", since=NOON - 3600, added=1234, tag="a1b2"),
    ClientInfo(id="b2", name="bob", since=NOON - 600, added=-34, tag="b2c3"),
    ClientInfo(id="c3", name="[b]carol[/b]", since=NOON - 60, added=0, tag="c3d4"),
)
HISTORY = tuple(HistoryPoint(seq=n, at=NOON - 100 + n, total=(n * 37) % 500 + 700) for n in range(1, 100))


class FrozenTime:
    """Stands in for the ``time`` module in the widgets: a fixed clock, in UTC."""

    @staticmethod
    def localtime(at: float | None = None) -> time.struct_time:
        return time.gmtime(NOON if at is None else at)

    @staticmethod
    def monotonic() -> float:
        return MONOTONIC

    strftime = staticmethod(time.strftime)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("tui.widgets.activity", "tui.widgets.clients", "tui.widgets.status"):
        monkeypatch.setattr(f"{module}.time", FrozenTime)


def connected(app: TallyApp) -> None:
    app.post_message(Connected(Welcome(you="a1", total=1200, seq=99, clients=CLIENTS, history=HISTORY)))
    app.post_message(LatencyMeasured(0.003))
    app.post_message(PresenceChanged([Presence(event="joined", client=CLIENTS[2])]))
    app.post_message(
        UpdatesArrived(
            [
                Update(seq=100, total=1242, amount=42, name="alice", client="a1", op="1", at=NOON - 5),
                Update(seq=101, total=1200, amount=-42, name="bob", client="b2", op="9", at=NOON - 2),
            ]
        )
    )


def scenario(*steps: Callable[[TallyApp], None]) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TallyApp)
        app.entry.query_one(Input).cursor_blink = False  # a blinking cursor would make pictures differ
        for step in steps:
            step(app)
            await pilot.pause()
        await until(pilot, lambda: not app.total.has_class("-up") and not app.total.has_class("-down"), what="no flash")

    return run_before


def reconnecting(app: TallyApp) -> None:
    app.post_message(ConnectionLost("the server is restarting", MONOTONIC + 12, 3))
    for amount in (5, -3):
        app.model.pending.add(amount, at=MONOTONIC)
    app.post_message(PendingChanged())


def refused(app: TallyApp) -> None:
    app.post_message(ServerRefused(Error(code="overflow", message="the total would leave the 64-bit range", op="7")))


def offline(app: TallyApp) -> None:
    app.post_message(GaveUp("the server refused the connection (HTTP 401)"))


def typed_invalid(app: TallyApp) -> None:
    app.entry.query_one(Input).value = "12abc"


def new_app() -> TallyApp:
    return TallyApp("ws://127.0.0.1:8765", "alice", autoconnect=False)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_connected(snap_compare: Any, size: tuple[int, int]) -> None:
    """Total, sparkline, clients with ours marked, activity, and latency."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reconnecting(snap_compare: Any, size: tuple[int, int]) -> None:
    """The countdown, the reason and the pending adds."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected, reconnecting))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_error(snap_compare: Any, size: tuple[int, int]) -> None:
    """A refusal from the server: a notification, a log line, and an inline input error."""
    assert snap_compare(new_app(), terminal_size=size, run_before=scenario(connected, refused, typed_invalid))


def test_offline(snap_compare: Any) -> None:
    """Refused for good: offline, with how to retry."""
    assert snap_compare(new_app(), terminal_size=(80, 24), run_before=scenario(offline))
