"""What you type is exactly what counts: the dashboard's promises, driven by the pilot against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from textual import events
from textual.widgets import Label

from tally.server.app import TallyServer
from tally.server.limits import Limits
from tally.server.protocol import INT64_MAX, Update
from tally.tui.app import make_app
from tally.tui.journal import journals_for
from tally.tui.link import LinkOptions
from tally.tui.pending import Pending
from tally.tui.screens.choice import ChoiceScreen
from tests.support.dashboard import Recorder, cell, log_text, until
from tests.support.faultproxy import FaultProxy
from tests.support.peers import Peer
from tests.support.servers import serving


async def test_each_enter_adds_exactly_the_line_at_any_speed(server: TallyServer) -> None:
    """Keys pressed back to back (a macro) still add one line per Enter: 1 Enter 1 Enter adds 2, never 11."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press(*(["1", "enter"] * 20), "1", "2", "enter", "-", "3", "enter")
        await until(pilot, lambda: server.ledger.seq == 22 and not app.link.pending, what="every add")
        assert [r.amount for r in server.view.recent] == [1] * 20 + [12, -3]


async def test_each_pasted_line_is_one_add(server: TallyServer) -> None:
    """A paste of several lines enters each complete line; what follows the last newline stays in the box."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        app.dashboard.entry.input.post_message(events.Paste("5\n7\r\n1,000\n4"))
        await until(pilot, lambda: server.ledger.seq == 3, what="three adds")
        assert [r.amount for r in server.view.recent] == [5, 7, 1000]
        assert app.dashboard.entry.input.value == "4"


async def test_a_paste_stops_at_a_line_that_is_not_an_amount(server: TallyServer) -> None:
    """Lines after an invalid one are not added behind the user's back; the invalid line stays to be fixed."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        app.dashboard.entry.input.post_message(events.Paste("5\n1,5\n7\n"))
        await until(pilot, lambda: app.dashboard.entry.has_class("-invalid"))
        assert app.dashboard.entry.input.value == "1,5"
        await until(pilot, lambda: server.ledger.seq == 1)
        assert server.ledger.total == 5
        await until(pilot, lambda: any("1 line(s) after it" in str(n.message) for n in app._notifications))


async def test_a_paste_skips_blank_lines_and_lands_at_the_cursor(server: TallyServer) -> None:
    """A column copied with blank lines adds each number; the first line goes where the cursor is."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        app.dashboard.entry.input.post_message(events.Paste("5\n\n  \n7\n"))
        await until(pilot, lambda: server.ledger.seq == 2, what="two adds")
        await pilot.press("1", "2", "home")
        app.dashboard.entry.input.post_message(events.Paste("3\n"))
        await until(pilot, lambda: server.ledger.seq == 3)
        assert [r.amount for r in server.view.recent] == [5, 7, 312]


async def test_the_servers_bound_is_checked_before_sending() -> None:
    """The welcome carries the bound on one add; the dashboard refuses past it without sending."""
    async with serving(limits=Limits(max_amount=100)) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("1", "0", "1", "enter")
            await until(pilot, lambda: app.dashboard.entry.has_class("-invalid"))
            assert "at most ±100" in str(app.dashboard.entry.query_one("#amount-hint", Label).render())
            assert app.dashboard.entry.input.value == "101" and not app.link.pending and server.ledger.seq == 0


async def test_an_add_the_server_refuses_gives_its_text_back() -> None:
    """Refused for good (here: the total would overflow), the text returns to the input and the log says which."""
    async with serving(limits=Limits(max_amount=INT64_MAX)) as roomy:
        async with await Peer.join(roomy.url, "big") as big:
            await big.send(type="add", op="1", amount=INT64_MAX - 1)
            await big.next_of(Update)
        app = make_app(LinkOptions(roomy.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("+", "5", "enter")
            await until(pilot, lambda: "your +5 was refused overflow" in log_text(app), what="the refusal")
            assert app.dashboard.entry.input.value == "+5" and not app.link.pending


async def test_undo_takes_back_your_last_add_and_redo_puts_it_back(server: TallyServer) -> None:
    """ctrl+z adds the opposite of your last add, shown as an undo to everyone; ctrl+y redoes it (an undo of the
    undo), and ctrl+z then undoes the redo; the log and a toast say which update each press took back."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot, await Peer.join(server.url, "bob") as bob:
        seen = Recorder(app)
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await bob.send(type="add", op="b1", amount=100)
        await pilot.press("7", "enter")
        await until(pilot, lambda: app.dashboard.total.total == 107 and not app.link.pending)
        await pilot.press("ctrl+z")
        await until(pilot, lambda: app.dashboard.total.total == 100 and not app.link.pending, what="undone")
        undo = server.view.recent[-1]
        assert (undo.amount, undo.undoes) == (-7, server.view.recent[-2].seq) == (-7, 2)
        assert "undoing your +7 (update 2)" in log_text(app) and "alice (you) undid update 2" in log_text(app)
        assert any("undoing your +7 (update 2)" in toast for toast in seen.toasts)
        await pilot.press("ctrl+z")  # nothing else of alice's: bob's add is not hers
        await until(pilot, lambda: any("Nothing of yours to undo" in toast for toast in seen.toasts))
        await pilot.press("ctrl+y")  # the undo is undone: +7 again
        await until(pilot, lambda: app.dashboard.total.total == 107 and not app.link.pending, what="redone")
        assert "redoing your +7 (update 2): undoing its undo (update 3)" in log_text(app)
        await pilot.press("ctrl+z")
        await until(pilot, lambda: app.dashboard.total.total == 100 and not app.link.pending, what="undone again")
        assert "undoing your +7 (update 4)" in log_text(app)
        assert [u.amount for u in server.view.recent] == [100, 7, -7, 7, -7]


async def test_undo_never_takes_back_someone_elses_add(server: TallyServer) -> None:
    """With only others' adds on the ledger, ctrl+z has nothing to take back and sends nothing."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot, await Peer.join(server.url, "bob") as bob:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await bob.send(type="add", op="b1", amount=100)
        await until(pilot, lambda: app.dashboard.total.total == 100)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert not app.link.pending and server.ledger.seq == 1


async def test_a_fresh_dashboard_shows_the_last_adds_and_a_returning_one_what_it_missed(server: TallyServer) -> None:
    """Opened, the log has the recent adds with their names; back after a break, what others added meanwhile."""
    async with await Peer.join(server.url, "bob") as bob:
        for n in range(3):
            await bob.send(type="add", op=str(n), amount=5)
            await bob.next_of(Update)
        proxy = FaultProxy(server.port)
        app = make_app(LinkOptions(f"ws://127.0.0.1:{await proxy.start()}", "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            assert log_text(app).count("bob added +5") == 3
            proxy.stall()  # alice is away: her reconnects hang until the path is back
            proxy.reset()
            await until(pilot, lambda: app.dashboard.status.state != "connected")
            for n in range(3, 13):  # ten adds while alice is away
                await bob.send(type="add", op=str(n), amount=2)
                await bob.next_of(Update)
            proxy.resume()
            app.link.reconnect_now()
            await until(
                pilot,
                lambda: app.dashboard.status.state == "connected" and app.dashboard.total.total == 35,
                what="back",
            )
            assert "bob +20 in 10 adds while you were away" in log_text(app)
        await proxy.close()


async def test_what_a_session_added_survives_reconnects_and_restarts(db_path: Path) -> None:
    """The Added column is the session's contribution: a reconnect or a server restart does not reset it."""
    pending = Pending()
    async with serving(db_path) as server:
        app = make_app(LinkOptions(server.url, "alice"), pending=pending)
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("4", "0", "enter")
            await until(pilot, lambda: app.model.you is not None and cell(app, app.model.you, "added") == "+40")
            port = server.port
    async with serving(db_path, port=port) as server:
        app = make_app(LinkOptions(server.url, "alice"), pending=pending)  # the same session (the CLI keeps it on disk)
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected" and app.model.you is not None)
            you = app.model.you
            assert you is not None and app.model.me is not None and app.model.me.added == 40, "from the welcome"
            # The table redraws a changed list a few times a second at most: wait for it, not for the clock.
            await until(pilot, lambda: you in app.dashboard.clients.rows and cell(app, you, "added") == "+40")


async def test_offline_the_last_known_total_looks_stale_and_pending_adds_project_it() -> None:
    """While reconnecting, the total says "last known", is dimmed, and shows what the pending adds would make it."""
    async with contextlib.AsyncExitStack() as running:
        server = await running.enter_async_context(serving())
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("1", "0", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 10 and not app.link.pending)
            assert not app.dashboard.total.has_class("-stale")
            await running.aclose()
            await until(pilot, lambda: app.dashboard.status.state == "reconnecting")
            assert app.dashboard.total.has_class("-stale") and "last known" in str(app.dashboard.total.border_title)
            await pilot.press("5", "enter")
            await until(pilot, lambda: len(app.link.pending) == 1 and app.dashboard.total.settled)
            assert "1 pending → 15" in str(app.dashboard.total.caption.render())
            (waiting,) = app.link.pending
            typed_at = time.strftime("%H:%M:%S", time.localtime(waiting.typed_at))
            assert f"your +5 typed at {typed_at} is pending" in log_text(app), "each pending add listed with its time"


async def test_pending_adds_are_never_sent_to_a_different_ledger(tmp_path: Path) -> None:
    """The server at the same address now holds another ledger: pending adds are held, and the user decides."""
    first_db, second_db = tmp_path / "first.db", tmp_path / "second.db"
    async with serving(first_db) as first:
        port = first.port
        app = make_app(LinkOptions(first.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            first_ledger = app.model.ledger
            await first.stop()
            await until(pilot, lambda: app.dashboard.status.state == "reconnecting")
            await pilot.press("5", "enter", "6", "enter")
            await until(pilot, lambda: len(app.link.pending) == 2)
            async with serving(second_db, port=port) as second:
                app.link.reconnect_now()
                await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the question")
                text = str(app.screen.query_one("#choice-text", Label).render())
                assert first_ledger in text and second.view.id in text
                await until(pilot, lambda: "different ledger" in log_text(app), what="said loudly in the log")
                assert second.ledger.seq == 0, "nothing was sent to the other ledger"
                await pilot.click("#keep")
                await until(pilot, lambda: not isinstance(app.screen, ChoiceScreen))
                await pilot.press("1", "enter")  # typed now, for this ledger
                await until(pilot, lambda: second.ledger.seq == 1 and not app.link.pending)
                assert second.ledger.total == 1


async def test_adds_left_by_a_dashboard_that_died_are_sent_once_by_the_next(
    server: TallyServer, tmp_path: Path
) -> None:
    """Journals without a running dashboard are adopted (one) or sent (the others): every add counts once."""
    root = tmp_path / "pending"
    dead = []
    for amounts in ([1, 2], [30]):  # two dashboards, running at once
        journal, _ = journals_for(server.url, root=root)
        pending = Pending(journal)
        for amount in amounts:
            pending.add(amount)
        pending.save()
        dead.append(journal)
    for journal in dead:
        journal.release()  # as if both dashboards had been killed
    adopted, leftovers = journals_for(server.url, root=root)
    app = make_app(LinkOptions(server.url, "alice"), pending=Pending(adopted), leftovers=leftovers)
    async with app.run_test() as pilot:
        await until(pilot, lambda: server.ledger.total == 33 and not app.link.pending, what="all sent")
        await until(pilot, lambda: "left by an earlier dashboard" in log_text(app))
    assert server.ledger.seq == 3
    assert [p.name for p in root.glob("*/*.json")] == [adopted.path.name]


async def test_a_long_queue_typed_offline_is_paced_never_refused(db_path: Path) -> None:
    """150 adds queued while the server was away are all applied once it is back, within its rate, none refused."""
    limits = Limits(rate=100, burst=100, address_rate=1000, address_burst=1000)
    async with serving(db_path, limits=limits) as server:
        port = server.port
    app = make_app(LinkOptions(f"ws://127.0.0.1:{port}", "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "reconnecting")
        for _ in range(150):
            app.link.add(1)
        async with serving(db_path, port=port, limits=limits) as server:
            app.link.reconnect_now()
            await until(pilot, lambda: not app.link.pending, timeout=20, what="every add acknowledged")
            assert (server.ledger.total, server.ledger.seq) == (150, 150)
        assert "refused" not in log_text(app)


async def test_a_service_that_is_not_tally_is_named_as_such() -> None:
    """Something else answering HTTP on the port is "not a Tally server", and is not retried in a loop."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    service = await asyncio.start_server(http, "127.0.0.1", 0)
    port = service.sockets[0].getsockname()[1]
    app = make_app(LinkOptions(f"ws://127.0.0.1:{port}", "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "offline")
        assert "not a Tally server" in str(app.dashboard.status.render())
    service.close()


async def test_two_ctrl_z_undo_two_adds_whether_pressed_together_or_after_every_answer(server: TallyServer) -> None:
    """Three adds, two ctrl+z: -2 and -3 are taken back whether the presses come at once (0 ms) or each after the
    server answered everything (what a 1.5 s pause let happen: the undo's ack was then taken for an add to undo)."""
    for pause in (False, True):
        app = make_app(LinkOptions(server.url, f"typist{int(pause)}"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")  # noqa: B023
            start = app.model.total or 0
            await pilot.press("1", "enter", "2", "enter", "3", "enter")
            await until(pilot, lambda: app.model.total == start + 6 and not app.link.pending)  # noqa: B023
            for _ in range(2):
                await pilot.press("ctrl+z")
                if pause:
                    await until(pilot, lambda: not app.link.pending and app.model.seq == server.ledger.seq)  # noqa: B023
            await until(pilot, lambda: not app.link.pending and app.model.total == start + 1, what=f"pause {pause}")  # noqa: B023
            assert [u.amount for u in list(server.view.recent)[-2:]] == [-3, -2]
