"""Learning and reading the dashboard, driven by the pilot against a real server: help, keys, sort, filter,
following the log, the chart's windows, a large room paged from the server, copy, preferences."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual import events
from textual.binding import Binding
from textual.command import Command, CommandList, CommandPalette
from textual.widgets import Input

from tally.server.app import TallyServer
from tally.server.protocol import HistoryRequest
from tally.tui.app import make_app, screenshot_directory
from tally.tui.config import load
from tally.tui.link import LinkOptions
from tally.tui.screens.help import HelpScreen
from tests.support.dashboard import log_text, table_names, until
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving


async def test_help_opens_with_f1_or_question_mark_from_anywhere_and_lists_the_apps_keys(server: TallyServer) -> None:
    """? in the amount input opens help instead of being typed; F1 too; Esc closes; the keys are the app's."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("1", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(help_screen.keys_table())
        keys = console.export_text()
        for key in ("ctrl+z", "ctrl+y", "F2", "end", "ctrl+t", "Take back your most recent add"):
            assert key in keys, key
        assert "delete_left" not in keys and "Delete character" not in keys  # the input's own keys are not ours
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.dashboard.entry.input.value == "1"  # the ? was not typed
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("f1")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_a_digit_plus_or_minus_typed_on_any_panel_goes_to_the_input(server: TallyServer) -> None:
    """On the people table (F3), typing -4 Enter adds -4; letters stay the panel's keys."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("f3")
        assert app.focused is app.dashboard.clients
        await pilot.press("minus", "4")
        focused: object = app.focused
        assert focused is app.dashboard.entry.input and app.dashboard.entry.input.value == "-4"
        await pilot.press("enter")
        await until(pilot, lambda: app.dashboard.total.total == -4)


async def test_people_sort_by_key_and_click_filter_by_name_and_you_stay_on_top() -> None:
    """n/a/s sort (again: reverse), a click on a header sorts, f filters, Esc clears; you are always first."""
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "mallory"))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            peers = {name: await Peer.join(server.url, name) for name in ("carol", "bob", "dave")}
            for op, (name, amount) in enumerate((("carol", 5), ("bob", 50), ("dave", -7))):
                await peers[name].send(type="add", op=str(op), amount=amount)
            await until(pilot, lambda: app.dashboard.total.total == 48 and app.dashboard.clients.settled)
            await until(pilot, lambda: table_names(app) == ["mallory (you)", "bob", "carol", "dave"], what="by name")
            await pilot.press("f3", "a")  # by added, largest first
            await until(pilot, lambda: table_names(app)[1:] == ["bob", "carol", "dave"], what="by added")
            await pilot.press("a")  # again: smallest first
            await until(pilot, lambda: table_names(app)[1:] == ["dave", "carol", "bob"], what="reversed")
            await pilot.click("#clients", offset=(3, 0))  # the Name header
            await until(pilot, lambda: table_names(app)[1:] == ["bob", "carol", "dave"], what="clicked: by name")
            await pilot.click("#clients", offset=(3, 0))
            await until(pilot, lambda: table_names(app)[1:] == ["dave", "carol", "bob"], what="clicked again")
            await pilot.press("f")
            assert app.focused is app.dashboard.people.filter_box
            await pilot.press("a", "r")
            await until(pilot, lambda: table_names(app) == ["carol"], what="filtered: you do not match")
            assert "1 name with “ar”" in str(app.dashboard.people.border_subtitle)
            await pilot.press("backspace", "backspace", "o")
            await until(pilot, lambda: table_names(app) == ["mallory (you)", "carol", "bob"], what="you match")
            assert "3 names with “o”" in str(app.dashboard.people.border_subtitle)
            await pilot.press("escape")
            await until(pilot, lambda: len(table_names(app)) == 4, what="filter cleared")
            focused: object = app.focused
            assert focused is app.dashboard.clients
            for peer in peers.values():
                await peer.close()


async def test_the_log_keeps_following_when_the_terminal_shrinks_and_wraps_its_lines_anew() -> None:
    """A smaller terminal moves the log off its end without anyone scrolling: it must not pause."""
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        # Short enough for 30 lines to overflow the log (it spans the height beside the people and the chart).
        async with app.run_test(size=(120, 24)) as pilot, await Peer.join(server.url, "bob") as bob:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            for n in range(30):
                await bob.send(type="add", op=str(n), amount=1)
            log = app.dashboard.activity
            await until(pilot, lambda: app.dashboard.total.total == 30 and log.settled and log.max_scroll_y > 0)
            await pilot.resize_terminal(40, 15)
            await pilot.press("f4")
            await bob.send(type="add", op="30", amount=1)
            await until(
                pilot,
                lambda: app.dashboard.total.total == 31 and "→ 31" in log.lines_in_view(),
                what="the new line in view",
            )
            assert "new" not in str(log.border_title), "not paused: nobody scrolled"
            widest = max(len(line) for line in log.lines_in_view().splitlines())
            assert widest <= log.scrollable_content_region.width, "lines wrapped to the new width"
            await pilot.press("home")  # reading from the top now
            await until(pilot, lambda: log.scroll_y == 0 and not log.following)
            await pilot.resize_terminal(50, 15)
            await until(pilot, lambda: log.size.width > 40, what="the wider log")
            await pilot.pause()
            assert log.scroll_y == 0 and not log.following, "a resize keeps the reader's place"


async def test_the_log_pauses_when_scrolled_up_counts_what_is_new_and_end_follows_again() -> None:
    """Scrolling up stops following; new lines are counted in the title; End resumes. f cycles the filter."""
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test(size=(80, 24)) as pilot, await Peer.join(server.url, "bob") as bob:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            for n in range(40):
                await bob.send(type="add", op=str(n), amount=1)
            await until(pilot, lambda: app.dashboard.total.total == 40 and app.dashboard.activity.settled)
            log = app.dashboard.activity
            await until(pilot, lambda: log.is_vertical_scroll_end and log.max_scroll_y > 0, what="following")
            await pilot.press("f4", "home")
            await until(pilot, lambda: log.scroll_y == 0)
            for n in range(40, 45):
                await bob.send(type="add", op=str(n), amount=1)
            await until(pilot, lambda: "5 new (End)" in str(log.border_title), what="paused, counting")
            assert log.scroll_y == 0, "stayed where the user was reading"
            await pilot.press("end")
            await until(pilot, lambda: log.is_vertical_scroll_end and "new" not in str(log.border_title))
            await pilot.press("f")  # my adds only
            assert "bob added" not in log.selected_text() and "my adds only" in str(log.border_title)
            await pilot.press("f", "f", "f")
            assert "bob added" in log_text(app) and str(log.border_title).startswith("Activity")


async def test_the_charts_windows_ask_the_server_for_their_history(server: TallyServer) -> None:
    """m, h and d (on the chart, F2) chart the last minute, hour and day, from the server's history."""
    app = make_app(LinkOptions(server.url, "alice"))
    sent: list[tuple[float, HistoryRequest]] = []
    request = app.link.request_history

    def recording(since: float, points: int = 200) -> str | None:
        sent.append((time.time(), HistoryRequest("", since, points)))  # when it was asked: the window ends then
        return request(since, points)

    app.link.request_history = recording  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("5", "enter")
        await until(
            pilot, lambda: app.dashboard.total.total == 5 and app.model.series.loaded, what="the minute, loaded"
        )
        await pilot.press("f2", "h")
        await until(pilot, lambda: app.model.series.window.name == "hour" and app.model.series.loaded)
        assert "h hour" in str(app.dashboard.chart.border_subtitle)  # the window shown, with its key
        await pilot.press("d")
        await until(pilot, lambda: app.model.series.window.name == "day" and app.model.series.loaded)
        # Each asks from its own moment back one window (a minute, an hour, a day), however slow the machine.
        assert [round(asked - request.since) for asked, request in sent] == [60, 3600, 86400]
        assert app.model.series.points[-1].total == 5
        await pilot.press("left")
        await until(pilot, lambda: app.model.series.window.name == "hour")


async def test_a_large_room_shows_the_exact_count_and_pages_from_the_server() -> None:
    """Past live presence the table holds only the rows in view, asked for as it scrolls; you stay on top."""
    limits = dataclasses.replace(UNLIMITED_RATE, live_presence=10)
    async with serving(limits=limits) as server:
        peers = [await Peer.join(server.url, f"person {n:03d}") for n in range(40)]
        app = make_app(LinkOptions(server.url, "zed"))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected" and not app.model.live)
            await until(pilot, lambda: "41 online" in str(app.dashboard.people.border_title), what="the exact count")
            await until(pilot, lambda: table_names(app)[1:3] == ["person 000", "person 001"], what="the first page")
            assert table_names(app)[0] == "zed (you)" and app.dashboard.clients.row_count < 15
            await pilot.press("f3", "pagedown", "pagedown")
            first = app.dashboard.clients.first
            assert first > 0
            await until(pilot, lambda: table_names(app)[1] == f"person {first:03d}", what="the page further on")
            await pilot.press("end")
            await until(pilot, lambda: table_names(app)[-1] in ("person 039", "zed"), what="the last page")
            assert "of 41" in str(app.dashboard.people.border_subtitle)
        for peer in peers:
            await peer.close()


async def test_copy_keys_copy_the_exact_total_a_row_and_the_lines_in_view(server: TallyServer) -> None:
    """ctrl+t copies the total; c on the people copies the highlighted row exactly; c on the log its lines."""
    app = make_app(LinkOptions(server.url, "alice"))
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("1", "2", "3", "4", "enter")
        await until(
            pilot,
            lambda: (
                app.dashboard.total.total == 1234 and app.dashboard.clients.settled and app.dashboard.activity.settled
            ),
        )
        await pilot.press("ctrl+t")
        assert copied[-1] == "1234"
        await pilot.press("f3", "c")
        assert copied[-1].startswith("alice") and "+1,234" in copied[-1]
        await pilot.press("f4", "c")
        assert "alice (you) added +1,234" in copied[-1]


async def test_small_screens_show_one_panel_at_a_time_and_keep_the_total_and_input(server: TallyServer) -> None:
    """Below 80x24 the log is shown; F3 shows the people instead; below 32x12 a message says why nothing is."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")

        def shown() -> list[str]:
            return [name for name, panel in app.dashboard.panels.items() if panel.display]

        assert shown() == ["activity"] and app.dashboard.total.display and app.dashboard.entry.display
        await pilot.press("5", "enter")
        await until(pilot, lambda: server.ledger.seq == 1 and not app.link.pending and bool(app.model.undo.done))
        await pilot.press("f3")
        await until(pilot, lambda: shown() == ["people"])
        await pilot.resize_terminal(30, 10)
        await until(pilot, lambda: app.screen.has_class("-tiny-width"))
        assert app.query_one("#too-small").display and not app.query_one("#dashboard").display
        await pilot.press("6", "enter", "/", "7", "enter")  # typed blind: must add nothing
        app.dashboard.entry.input.post_message(events.Paste("6\n7\n"))  # nor pasted (/ focused the input)
        await pilot.press("ctrl+z")  # nor an undo of an add made before
        await pilot.pause()
        assert not app.link.pending and server.ledger.seq == 1 and app.dashboard.entry.input.value == ""
        await pilot.resize_terminal(120, 36)
        await until(pilot, lambda: shown() == ["history", "people", "activity"])


async def test_a_theme_chosen_in_the_app_is_saved_and_screenshots_go_where_a_directory_exists(
    server: TallyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The theme is written to the config file given; with no ~/Downloads, screenshots go home."""
    config = tmp_path / "tally" / "config.toml"
    app = make_app(LinkOptions(server.url, "alice"), autoconnect=False, config=config)
    async with app.run_test() as pilot:
        app.theme = "nord"
        await until(pilot, lambda: config.exists())
    assert load(config).theme == "nord"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("tally.tui.app.platformdirs.user_downloads_path", lambda: home / "Downloads")
    assert screenshot_directory() == home
    (home / "Downloads").mkdir()
    assert screenshot_directory() == home / "Downloads"


async def test_the_input_keeps_every_key_typed_while_the_room_floods() -> None:
    """Typing reaches the input in order while updates pour in (the panels repaint a few times a second)."""
    async with serving(limits=UNLIMITED_RATE) as server:
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test(size=(120, 36)) as pilot, await Peer.join(server.url, "flood") as flood:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            for n in range(300):
                await flood.send(type="add", op=str(n), amount=1)
            await pilot.press(*"2,500")
            assert app.dashboard.entry.query_one(Input).value == "2,500"
            await until(pilot, lambda: app.dashboard.total.total == 300)


async def test_the_command_palette_says_each_commands_key(server: TallyServer) -> None:
    """ctrl+p, then a command's name: its help ends with its key, and Enter runs it."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("ctrl+p", *"Chart")

        def offered() -> str:
            palette = app.screen
            if not isinstance(palette, CommandPalette):
                return ""
            option = palette.query_one(CommandList).highlighted_option
            return str(option.hit.help) if isinstance(option, Command) and option.hit.text == "Chart" else ""

        await until(pilot, lambda: offered().endswith("(F2)"), what="Chart, with its key")
        await pilot.press("enter")
        await until(pilot, lambda: app.focused is app.dashboard.chart)
        for binding in app.BINDINGS:
            assert isinstance(binding, Binding) and binding.tooltip, f"{binding} needs help text"
