"""The real dashboard, driven by Textual's pilot, against a real server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from http import HTTPStatus
from pathlib import Path

from textual.command import Command, CommandList, CommandPalette
from textual.widgets import Input, Label
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tally.server.app import TallyServer
from tally.server.protocol import Ack, Presence, ServerMessage, Update
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tally.tui.messages import Event, UpdatesArrived
from tally.tui.screens.choice import ChoiceScreen
from tally.tui.screens.rename import RenameScreen
from tests.support.dashboard import cell, log_text, table_names, until
from tests.support.faultproxy import FaultProxy
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, ServerProcess, serving


async def test_two_dashboards_see_each_others_adds_joins_and_renames(server: TallyServer) -> None:
    """Two app instances share one total, one clients list and one stream of events."""
    alice, bob = make_app(LinkOptions(server.url, "alice")), make_app(LinkOptions(server.url, "bob"))
    async with alice.run_test() as a, bob.run_test() as b:
        await until(
            a,
            lambda: alice.dashboard.clients.row_count == 2 and bob.dashboard.clients.row_count == 2,
            what="both connected",
        )
        assert sorted(table_names(alice)) == ["alice (you)", "bob"]

        await a.press("4", "2", "enter")
        await until(b, lambda: bob.dashboard.total.total == 42, what="bob sees alice's add")
        assert "alice added +42  → 42" in log_text(bob)
        you = alice.model.you
        assert you is not None
        # The table redraws a changed list a few times a second at most.
        await until(b, lambda: cell(bob, you, "added") == "+42", what="alice's row credited")

        await b.press("-", "2", "enter")
        await until(a, lambda: alice.dashboard.total.total == 40, what="alice sees bob's add")
        assert "bob added -2  → 40" in log_text(alice)

        await b.press("ctrl+n")
        await until(b, lambda: isinstance(bob.screen, RenameScreen))
        rename = bob.screen.query_one("#rename-input", Input)
        rename.value = "Robert"
        await b.press("enter")
        await until(a, lambda: "Robert" in table_names(alice), what="alice sees the rename")
        await until(a, lambda: "bob is now Robert" in log_text(alice), what="the rename logged")

    assert (server.ledger.total, server.ledger.seq) == (40, 2)


async def test_invalid_input_sends_nothing(server: TallyServer) -> None:
    """Text that is not a whole number is explained inline and never reaches the server."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        for text in ("abc", "1.5", "0", "9" * 30):
            app.dashboard.entry.query_one(Input).value = text
            await pilot.press("enter")
            await pilot.pause()
            error = app.dashboard.entry.query_one("#amount-hint", Label)
            assert app.dashboard.entry.has_class("-invalid") and str(error.render()).strip(), text
            assert app.dashboard.entry.query_one(Input).value == text  # kept so it can be corrected
        assert not app.link.pending and server.ledger.seq == 0
        app.dashboard.entry.query_one(Input).value = "+7"
        await pilot.press("enter")
        await until(pilot, lambda: app.dashboard.total.total == 7)
        assert not app.dashboard.entry.has_class("-invalid") and app.dashboard.entry.query_one(Input).value == ""


async def test_adds_typed_while_the_server_is_down_land_exactly_once(db_path: Path) -> None:
    """Stop the server, type adds, restart it: the dashboard shows it all and every add counts once."""
    async with contextlib.AsyncExitStack() as first_run:
        first = await first_run.enter_async_context(serving(db_path))
        port, app = first.port, make_app(LinkOptions(first.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("1", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 1 and not app.link.pending)

            await first_run.aclose()  # the server stops under the dashboard
            await until(pilot, lambda: app.dashboard.status.state == "reconnecting", what="reconnecting shown")
            assert "reconnecting in" in str(app.dashboard.status.render())
            assert "disconnected: the server stopped" in log_text(app)
            for key in ("2", "3", "4"):
                await pilot.press(key, "enter")
            await until(pilot, lambda: app.dashboard.status.pending == 3)
            assert "3 pending" in str(app.dashboard.status.render())

            async with serving(db_path, port=port) as second:
                app.link.reconnect_now()  # skip the backoff wait; the resend path is the same
                await until(
                    pilot,
                    lambda: app.dashboard.status.state == "connected" and app.dashboard.status.pending == 0,
                    what="resynced",
                )
                await until(pilot, lambda: app.dashboard.total.total == 10)
                assert (second.ledger.total, second.ledger.seq) == (10, 4)


async def test_a_killed_server_is_noticed_and_typed_adds_land_after_restart(db_path: Path) -> None:
    """kill -9 under a dashboard: it shows reconnecting, queues adds, and delivers them once on restart."""
    with ServerProcess(db_path) as server:
        app = make_app(LinkOptions(server.start(), "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("5", "enter")
            await until(pilot, lambda: app.dashboard.total.total == 5 and not app.link.pending)

            await asyncio.to_thread(server.kill)
            await until(pilot, lambda: app.dashboard.status.state == "reconnecting", what="the kill noticed")
            await pilot.press("6", "enter", "7", "enter")
            await until(pilot, lambda: app.dashboard.status.pending == 2)

            await asyncio.to_thread(server.start)
            app.link.reconnect_now()
            await until(
                pilot,
                lambda: app.dashboard.status.state == "connected" and app.dashboard.status.pending == 0,
                what="resynced",
            )
            await until(pilot, lambda: app.dashboard.total.total == 18)
        async with await Peer.join(server.url, "check") as check:
            assert check.welcome is not None and (check.welcome.total, check.welcome.seq) == (18, 3)


async def test_acks_lost_in_a_reconnect_do_not_double_count(server: TallyServer) -> None:
    """Pending adds resent after a reconnect, even if they were applied already, count once."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        lost: list[str] = []
        receive = app.link._receive

        def losing(message: ServerMessage) -> None:
            if isinstance(message, Ack) and len(lost) < 2:
                lost.append(message.op)  # as if both acks had been lost on the way
            else:
                receive(message)

        app.link._receive = losing  # type: ignore[method-assign]
        sent = [app.link.add(5).op, app.link.add(6).op]
        await until(pilot, lambda: server.ledger.seq == 2 and lost == sent, what="both applied, both acks lost")
        assert [add.op for add in app.link.pending] == sent, "still pending: their outcome is unknown here"
        app.link.reconnect_now()
        # Not pending means both resends were answered, so the server has seen them.
        await until(
            pilot, lambda: app.dashboard.status.state == "connected" and not app.link.pending, what="resent and acked"
        )
    assert (server.ledger.total, server.ledger.seq) == (11, 2)


async def test_hostile_names_render_literally(server: TallyServer) -> None:
    """Markup, links and actions in names are shown as typed, and do nothing."""
    hostile = ["[bold red]x[/]", "[@click=app.quit]bye[/]", "[link=http://e.vil]y[/link]", ":smile: $x"]
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(120, 36)) as pilot:  # wide enough for each name whole in the table
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        peers = [await Peer.join(server.url, name) for name in hostile]
        await until(pilot, lambda: app.dashboard.clients.row_count == 1 + len(hostile), what="all joined")
        await peers[1].send(type="add", op="1", amount=3)
        await until(pilot, lambda: app.dashboard.total.total == 3)
        await pilot.click("#clients")
        assert sorted(table_names(app)) == sorted(["alice (you)", *hostile])
        # Joins that come together are one line ("4 joined: …"); one by one, a line each.
        await until(pilot, lambda: "4 joined" in log_text(app) or all(f"{n} joined" in log_text(app) for n in hostile),
                    what="joins logged")  # fmt: skip
        log = log_text(app)
        assert "[@click=app.quit]bye[/] added +3" in log
        assert app.is_running
        for peer in peers:
            await peer.close()


async def test_a_hostile_server_cannot_reach_the_terminal() -> None:
    """Control characters and escapes from a server that breaks the rules are stripped before display."""
    evil = "\x1b]0;pwned\x07\x1b[2J[red]mal\u202eory\nline"

    async def hostile_server(connection: ServerConnection) -> None:
        await connection.recv()  # hello
        client = {"id": "e1", "name": evil, "address": evil, "since": 0, "added": 0}
        await connection.send(
            json.dumps({"type": "welcome", "you": "me", "total": 1, "seq": 1, "clients": [client], "history": []})
        )
        await connection.send(
            json.dumps(
                {"type": "update", "seq": 2, "total": 2, "amount": 1, "name": evil, "client": "e1", "op": None, "at": 0}
            )
        )
        await connection.send(json.dumps({"type": "error", "code": evil, "message": evil, "op": None}))
        await connection.wait_closed()

    async with serve(hostile_server, "127.0.0.1", 0, subprotocols=["tally.v2"]) as hostile:  # type: ignore[list-item]
        port = hostile.sockets[0].getsockname()[1]
        app = make_app(LinkOptions(f"ws://127.0.0.1:{port}", "alice"))
        async with app.run_test(size=(120, 36)) as pilot:  # wide enough for the name whole in the table
            await until(pilot, lambda: app.dashboard.total.total == 2)
            await until(pilot, lambda: "refused" in log_text(app), what="the error, sent last, shown")
            await until(pilot, lambda: len(table_names(app)) == 2, what="the people drawn")
            shown = [*table_names(app), log_text(app)]
            for text in shown:
                assert not any(ord(char) < 32 or char == "\u202e" for char in text.replace("\n", "")), text
            assert any("]0;pwned[2J[red]malory line" in name for name in table_names(app))  # you are pinned first


async def test_peers_and_dashboard_agree_on_updates(server: TallyServer) -> None:
    """A plain protocol peer and the dashboard see the same seq and total."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot, await Peer.join(server.url, "watcher") as watcher:
        await until(pilot, lambda: app.dashboard.clients.row_count == 2)
        await pilot.press("9", "enter")
        update = await watcher.next_of(Update)
        assert (update.total, update.name) == (9, "alice") and app.dashboard.total.seq == update.seq
        await pilot.press("ctrl+q")
    left = await watcher.next_of(Presence)
    assert (left.event, left.client.name) == ("left", "alice")


async def test_a_flood_of_updates_is_coalesced_and_typing_still_works() -> None:
    """2,000 updates from another client arrive in far fewer repaints; the input keeps every key."""
    batches: list[int] = []
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        post = app.link.post

        def counting_post(message: Event) -> object:
            if isinstance(message, UpdatesArrived):
                batches.append(len(message.updates))
            return post(message)

        app.link.post = counting_post
        async with app.run_test() as pilot, await Peer.join(server.url, "flood") as flood:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            for n in range(2000):
                await flood.send(type="add", op=str(n), amount=1)
            await pilot.press(*"12345")
            await until(pilot, lambda: app.dashboard.total.total == 2000, what="the latest total")
            assert sum(batches) == 2000 and len(batches) < 2000 / 4, batches
            assert app.dashboard.entry.query_one(Input).value == "12345"
            await pilot.press("enter")
            await until(pilot, lambda: app.dashboard.total.total == 14345)


async def test_a_gap_in_updates_resynchronises_instead_of_showing_a_wrong_total() -> None:
    """If seq jumps, the dashboard reconnects and shows the fresh snapshot's total."""
    connections = 0

    async def gappy_server(connection: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await connection.recv()  # hello
        total = 100 if connections == 1 else 777
        welcome = {"type": "welcome", "you": "me", "total": total, "seq": 1, "clients": [], "history": []}
        await connection.send(json.dumps(welcome))
        if connections == 1:  # seq 2 is lost on the way; seq 3 arrives
            update = {"type": "update", "seq": 3, "total": 5, "amount": 5, "name": "x", "client": "c9", "op": None}
            await connection.send(json.dumps({**update, "at": 0}))
        await connection.wait_closed()

    async with serve(gappy_server, "127.0.0.1", 0, subprotocols=["tally.v2"]) as gappy:  # type: ignore[list-item]
        app = make_app(LinkOptions(f"ws://127.0.0.1:{gappy.sockets[0].getsockname()[1]}", "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.total.total == 777, what="the fresh snapshot")
            assert connections == 2 and app.dashboard.total.seq == 1
            assert "missed an update" in log_text(app)


async def test_a_refused_handshake_shows_offline_until_asked_to_retry() -> None:
    """HTTP 4xx at the handshake is not retried in a loop: offline, and ctrl+r tries again."""
    attempts = 0

    def refuse(connection: ServerConnection, request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        return connection.respond(HTTPStatus.FORBIDDEN, "go away\n")

    async with serve(lambda c: c.wait_closed(), "127.0.0.1", 0, process_request=refuse) as refusing:
        app = make_app(LinkOptions(f"ws://127.0.0.1:{refusing.sockets[0].getsockname()[1]}", "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "offline")
            assert "HTTP 403" in str(app.dashboard.status.render()) and attempts == 1
            # The wait is the test: a link that retried would have done so within its
            # first backoff step (at most 0.5 s).
            await pilot.pause(1.0)
            assert attempts == 1
            await pilot.press("ctrl+r")
            await until(pilot, lambda: attempts == 2)


async def test_actions_are_in_the_command_palette(server: TallyServer) -> None:
    """Rename is reachable from the command palette as well as its key."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("ctrl+p")
        await pilot.press(*"Rename")

        def rename_offered() -> bool:
            palette = app.screen
            if not isinstance(palette, CommandPalette):
                return False
            option = palette.query_one(CommandList).highlighted_option
            return isinstance(option, Command) and option.hit.text == "Rename"

        await until(pilot, rename_offered, what="Rename highlighted in the palette")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RenameScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RenameScreen))


async def test_quitting_with_an_add_sent_but_unanswered_says_discarding_cannot_take_it_back(
    server: TallyServer,
) -> None:
    """An add already on its way may have been counted: the dialog must not promise that discarding undoes it."""
    proxy = FaultProxy(server.port)
    app = make_app(LinkOptions(f"ws://127.0.0.1:{await proxy.start()}", "alice"))
    try:
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            proxy.stall()  # the add goes out; its answer never comes back
            await pilot.press("5", "enter")
            await until(pilot, lambda: not app.link.unsent and len(app.link.pending) == 1, what="sent, unanswered")
            await pilot.press("ctrl+q")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the question")
            text = str(app.screen.query_one("#choice-text", Label).render())
            assert "It may have reached the server, which may have counted it" in text, text
            await pilot.press("escape")
    finally:
        proxy.resume()
        await proxy.close()


async def test_quitting_with_pending_adds_asks_what_to_do_with_them(server: TallyServer) -> None:
    """ctrl+q with unacknowledged adds asks: wait (Escape), quit and keep them for next time, or discard them."""
    app = make_app(LinkOptions(server.url, "alice"), autoconnect=False)
    async with app.run_test() as pilot:
        app.link.add(5)  # never sent: the app is not connected
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the question")
        assert "1 add has not reached the server yet" in str(app.screen.query_one("#choice-text", Label).render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ChoiceScreen))
        assert app.is_running and len(app.link.pending) == 1
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.click("#keep")
        await until(pilot, lambda: not app.is_running)
    assert len(app.link.pending) == 1, "kept, to be sent by the next dashboard"

    app = make_app(LinkOptions(server.url, "alice"), autoconnect=False)
    async with app.run_test() as pilot:
        app.link.add(5)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.click("#discard")
        await until(pilot, lambda: not app.is_running)
    assert len(app.link.pending) == 0


async def test_quitting_with_nothing_pending_quits_at_once(server: TallyServer) -> None:
    """No question when nothing is waiting."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running)


async def test_what_the_app_holds_once_drawn_is_left_out_of_full_collections_until_it_stops(
    server: TallyServer,
) -> None:
    """Once its first screen is drawn the app freezes what exists (the collector no longer walks it every few
    seconds); when it stops it thaws it, so that a process running app after app (these tests) frees the
    earlier ones' garbage."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        assert gc.get_freeze_count() > 0
        assert not any(obj is app.dashboard for obj in gc.get_objects(generation=2)), "frozen, not walked"
    assert gc.get_freeze_count() == 0, "thawed when the app stopped"
    assert any(obj is app.dashboard for obj in gc.get_objects(generation=2)), "collectable again"


async def test_since_in_the_people_list_survives_a_server_restart(db_path: Path) -> None:
    """The dashboard says when its person first came on every hello: after a server restart the people list (its
    own row, and a watcher's) still says that time, not the reconnect's (a restart takes far more than 10 ms)."""
    with ServerProcess(db_path) as server:
        url = server.start()
        app = make_app(LinkOptions(url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected" and app.model.me is not None)
            assert app.model.me is not None
            first = app.model.me.since
            await asyncio.to_thread(server.kill)
            await until(pilot, lambda: app.dashboard.status.state == "reconnecting", what="the kill noticed")
            await asyncio.to_thread(server.start)
            app.link.reconnect_now()
            old_you = app.model.you
            await until(pilot, lambda: app.dashboard.status.state == "connected" and app.model.you != old_you)
            assert app.model.me is not None and abs(app.model.me.since - first) < 0.01, (app.model.me.since, first)
            async with await Peer.join(server.url, "watcher") as watcher:
                assert watcher.welcome is not None
                (alice,) = [client for client in watcher.welcome.clients if client.name == "alice"]
                assert abs(alice.since - first) < 0.01, (alice.since, first)
