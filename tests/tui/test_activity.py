"""The activity log under traffic, fed the messages its connection would post: grouping, order, filters."""

from __future__ import annotations

from tally.server.protocol import ClientInfo, Presence, Update, Welcome
from tally.tui.app import TallyApp, make_app
from tally.tui.link import LinkOptions
from tally.tui.messages import Connected, PresenceChanged, UpdatesArrived
from tests.support.dashboard import log_text, until
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving

NOW = 1_795_521_600.0


def person(n: int) -> ClientInfo:
    return ClientInfo(id=f"c{n}", name=f"guest {n}", since=NOW, added=0)


def welcomed() -> TallyApp:
    app = make_app(LinkOptions("ws://127.0.0.1:9", "alice"), autoconnect=False)
    me = ClientInfo(id="me", name="alice", since=NOW, added=0)
    app.post_event(Connected(Welcome(you="me", total=0, seq=0, clients=(me,), history=())))
    return app


async def test_many_joins_of_a_moment_are_one_line_and_a_few_are_a_line_each() -> None:
    """30 people joining over a few frames are '30 joined: …'; two are two lines."""
    app = welcomed()
    async with app.run_test() as pilot:
        log = app.dashboard.activity
        # "A moment" that cannot end while the test runs, however slow the machine: it ends when the test says.
        log.settle = 3600.0
        for frame in range(3):
            app.post_event(PresenceChanged([Presence("joined", person(frame * 10 + n)) for n in range(10)]))
            await pilot.pause(0.05)
        await until(pilot, lambda: log.holding == 30, what="three frames of joins held")
        assert "joined" not in log_text(app), "held for grouping, not written one by one"
        log.write_presence()
        await until(pilot, lambda: log.settled)
        assert "30 joined: guest 0, guest 1, guest 2, …" in log_text(app)
        app.post_event(PresenceChanged([Presence("joined", person(100)), Presence("joined", person(101))]))
        await until(pilot, lambda: log.holding == 2)
        log.write_presence()
        await until(pilot, lambda: "guest 101 joined" in log_text(app))
        assert "guest 100 joined" in log_text(app) and "2 joined" not in log_text(app)


async def test_an_add_is_never_logged_after_its_authors_left_line() -> None:
    """An update that arrives after its author left (a slow commit) is put before the 'left' line."""
    app = welcomed()
    async with app.run_test() as pilot:
        bob = ClientInfo(id="b", name="bob", since=NOW, added=0)
        app.post_event(PresenceChanged([Presence("joined", bob)]))
        await until(pilot, lambda: "bob joined" in log_text(app))
        app.post_event(PresenceChanged([Presence("left", bob)]))
        await until(pilot, lambda: "bob left" in log_text(app))
        app.post_event(UpdatesArrived([Update(seq=1, total=7, amount=7, name="bob", client="b", op="1", at=NOW)]))
        await until(pilot, lambda: "bob added +7" in log_text(app))
        lines = log_text(app).splitlines()
        assert [i for i, line in enumerate(lines) if "bob" in line] == sorted(
            i for i, line in enumerate(lines) if "bob" in line
        )
        assert lines.index(next(line for line in lines if "bob added" in line)) < lines.index(
            next(line for line in lines if "bob left" in line)
        )


async def test_a_join_held_for_grouping_is_written_before_the_joiners_first_add() -> None:
    """Someone who adds at once is seen to come first."""
    app = welcomed()
    async with app.run_test() as pilot:
        carol = ClientInfo(id="c", name="carol", since=NOW, added=0)
        app.post_event(PresenceChanged([Presence("joined", carol)]))
        app.post_event(UpdatesArrived([Update(seq=1, total=3, amount=3, name="carol", client="c", op="1", at=NOW)]))
        await until(pilot, lambda: "carol added +3" in log_text(app))
        text = log_text(app)
        assert text.index("carol joined") < text.index("carol added +3")


async def test_the_filters_show_mine_adds_only_or_no_joins() -> None:
    """Each filter redraws the log from what it kept; 'all' shows everything again."""
    app = welcomed()
    async with app.run_test() as pilot:
        app.post_event(PresenceChanged([Presence("joined", person(1))]))
        app.post_event(UpdatesArrived([
            Update(seq=1, total=1, amount=1, name="guest 1", client="c1", op="1", at=NOW),
            Update(seq=2, total=3, amount=2, name="alice", client="me", op="1", at=NOW),
        ]))  # fmt: skip
        await until(pilot, lambda: app.dashboard.activity.settled and "guest 1 joined" in log_text(app))
        log = app.dashboard.activity
        log.set_filter("mine")
        assert "alice (you) added +2" in log_text(app) and "guest 1" not in log_text(app)
        log.set_filter("adds")
        assert "guest 1 added +1" in log_text(app) and "joined" not in log_text(app)
        log.set_filter("quiet")
        assert "joined" not in log_text(app) and "connected" in log_text(app)
        log.set_filter("all")
        assert "guest 1 joined" in log_text(app)


async def test_two_people_with_one_name_are_told_apart_in_the_log() -> None:
    """Two sessions called bob (one of them renamed to it): every line of theirs carries their tags."""
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            first, second = await Peer.join(server.url, "bob"), await Peer.join(server.url, "robert")
            await second.send(type="rename", name="bob")
            await until(pilot, lambda: "bob" in app.dashboard.activity.ambiguous, what="the name seen twice")
            for op, peer in enumerate((first, second)):
                await peer.send(type="add", op=str(op), amount=op + 2)
            await until(pilot, lambda: app.dashboard.total.total == 5 and app.dashboard.activity.settled)
            tags = [info.tag for info in app.model.clients.values() if info.name == "bob"]
            assert len(set(tags)) == 2
            log = log_text(app)
            assert all(f"bob#{tag} added" in log for tag in tags) and "bob added" not in log, log
            for peer in (first, second):
                await peer.close()


async def test_new_lines_are_drawn_already_scrolled_to_and_without_laying_out_the_screen() -> None:
    """While following, every frame drawn shows the log at its end (new lines and the scroll to them come in one
    frame), each batch in order, its scrollbar sized for every line, and writing lines lays nothing out (the
    log's box does not change)."""
    app = welcomed()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.dashboard.activity
        seq = 0

        def batch(count: int) -> None:
            nonlocal seq
            updates = []
            for _ in range(count):
                seq += 1
                updates.append(Update(seq=seq, total=seq, amount=1, name="bob", client="b", op=str(seq), at=NOW))
            app.post_event(UpdatesArrived(updates))

        for _ in range(3):  # enough to overflow the log, and to show its scrollbar (that does lay out, once)
            batch(10)
        await until(pilot, lambda: f"→ {seq}" in log.lines_in_view(), what="an overflowing log at its end")
        await pilot.pause()
        frames: list[tuple[float, int]] = []
        layouts: list[object] = []
        app.screen.screen_layout_refresh_signal.subscribe(log, layouts.append)
        displayed = app.post_display_hook

        def shown() -> None:
            frames.append((log.scroll_y, log.max_scroll_y))
            assert log.vertical_scrollbar.window_virtual_size == len(log.lines), "the scrollbar lags the lines"
            displayed()

        app.post_display_hook = shown  # type: ignore[method-assign]
        for _ in range(4):
            batch(3)
            await until(pilot, lambda: f"→ {seq}" in log.lines_in_view(), what="the batch written, in view")
        await pilot.pause()
        assert frames and all(y == end for y, end in frames), frames
        assert not layouts, "writing lines laid the screen out"
        assert log.following and log.scroll_y == log.max_scroll_y
        lines = [line for line in log_text(app).splitlines() if "bob added" in line]
        assert len(lines) == 42 and all(f"→ {n}" in line for n, line in zip(range(1, 43), lines, strict=True))
