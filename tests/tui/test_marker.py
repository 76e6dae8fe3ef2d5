"""The total's change marker is the last add itself, from the updates: every screen that saw the same history
shows the same marker, however its updates were batched and its repaints fell (issue 20, "screens disagree")."""

from __future__ import annotations

from tally.server.app import TallyServer
from tally.server.protocol import Update
from tally.tui.app import TallyApp, make_app
from tally.tui.link import LinkOptions
from tally.tui.messages import UpdatesArrived
from tests.support.dashboard import until
from tests.support.peers import Peer


def marker_amount(app: TallyApp) -> int | None:
    """The amount the marker shows (who made it reads "you" on the typist's screen, the name elsewhere)."""
    marker = app.dashboard.total.marker
    return None if marker is None else marker[0]


async def test_typist_and_watchers_show_the_same_marker_after_quick_adds_and_a_paste(server: TallyServer) -> None:
    """20 quick Enters (the last one +13), then a paste of 4 from a script: the typist and a watcher both end on
    the last add, not on whatever one repaint merged."""
    alice, bob = make_app(LinkOptions(server.url, "alice")), make_app(LinkOptions(server.url, "bob"))
    async with alice.run_test() as a, bob.run_test() as b:
        await until(
            a, lambda: alice.dashboard.status.state == "connected" and bob.dashboard.status.state == "connected"
        )
        await a.press(*("1", "enter") * 19, "1", "3", "enter")
        for app, pilot in ((alice, a), (bob, b)):
            await until(pilot, lambda: app.dashboard.total.total == 32, what="the 20 adds")  # noqa: B023
        assert marker_amount(alice) == marker_amount(bob) == 13
        async with await Peer.join(server.url, "script") as script:
            for op, amount in enumerate((4, 4, 4, -2)):
                await script.send(type="add", op=str(op), amount=amount)
            for app, pilot in ((alice, a), (bob, b)):
                await until(pilot, lambda: app.dashboard.total.total == 42, what="the paste")  # noqa: B023
        assert marker_amount(alice) == marker_amount(bob) == -2
        assert alice.dashboard.total.marker == (-2, "script") == bob.dashboard.total.marker


async def test_the_same_updates_in_one_batch_or_one_at_a_time_give_the_same_marker() -> None:
    """One dashboard gets 20 updates in one batch, another one by one with a repaint between: same marker."""
    updates = [Update(seq=n, total=n * (n + 1) // 2, amount=n, name="bob", client="b2", op=str(n), at=0.0)
               for n in range(1, 21)]  # fmt: skip
    fast, slow = (make_app(LinkOptions("ws://127.0.0.1:9", "alice"), autoconnect=False) for _ in range(2))
    async with fast.run_test() as f, slow.run_test() as s:
        fast.post_event(UpdatesArrived(updates))
        for update in updates:
            slow.post_event(UpdatesArrived([update]))
            await s.pause()
        await until(f, lambda: fast.dashboard.total.seq == 20)
        await until(s, lambda: slow.dashboard.total.seq == 20)
        assert fast.dashboard.total.marker == slow.dashboard.total.marker == (20, "bob")
