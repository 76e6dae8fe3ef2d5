"""Keys that always do the same thing, driven by the pilot against a real server: j/k/g/G, Esc, q, the log's
search, copy, letter keys in dialogs, the rename dialog's first keys, and the key bar at 80 columns."""

from __future__ import annotations

from textual import events
from textual.app import App
from textual.widget import Widget
from textual.widgets import Input

from tally.server.app import TallyServer
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tally.tui.screens.choice import ChoiceScreen
from tally.tui.screens.rename import RenameScreen
from tally.tui.widgets import KeyBar
from tests.support.dashboard import Recorder, reads_in_order, screen_text, table_names, until
from tests.support.peers import Peer


def focused(app: App[None]) -> Widget | None:
    """What has the focus now (a call: each read is fresh, where an attribute read stays narrowed)."""
    return app.focused


async def test_j_k_g_and_G_move_in_the_people_list_and_the_log(server: TallyServer) -> None:
    """In the people (F3): j down, k up, g first, G last. In the log (F4): k up (it stops following), G follows."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(100, 24)) as pilot:
        peers = [await Peer.join(server.url, name) for name in ("bob", "carol", "dave")]
        table, log = app.dashboard.clients, app.dashboard.activity
        await until(pilot, lambda: len(table_names(app)) == 4, what="four people")

        def name() -> str | None:
            return getattr(table.highlighted(), "name", None)

        await pilot.press("f3", "j", "j")
        await until(pilot, lambda: name() == "carol", what="carol highlighted")  # a page may come first
        await pilot.press("k")
        await until(pilot, lambda: name() == "bob", what="bob highlighted")  # a page may come first
        await pilot.press("G")
        await until(pilot, lambda: name() == "dave", what="dave highlighted")  # a page may come first
        await pilot.press("g")
        await until(pilot, lambda: name() == "alice", what="alice highlighted")  # a page may come first
        for n in range(40):
            await peers[0].send(type="add", op=str(n), amount=1)
        await until(pilot, lambda: app.dashboard.total.total == 40 and log.settled and log.max_scroll_y > 0)
        await pilot.press("f4", "k", "k")
        await until(pilot, lambda: not log.following, what="k scrolled up")
        await pilot.press("g")
        await until(pilot, lambda: log.scroll_y == 0)
        await pilot.press("G")
        await until(pilot, lambda: log.following and log.is_vertical_scroll_end, what="G follows again")
        for peer in peers:
            await peer.close()


async def test_escape_leaves_a_panel_and_q_quits_outside_the_input(server: TallyServer) -> None:
    """Esc on a panel goes back to the input; q typed in the input is text; q on a panel quits (nothing pending)."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        box = app.dashboard.entry.input
        await pilot.press("f2")
        assert focused(app) is app.dashboard.chart
        await pilot.press("escape")
        assert focused(app) is box
        await pilot.press("q")
        assert box.value == "q" and app.is_running, "in the input, q is text"
        await pilot.press("backspace", "f3", "q")
        await until(pilot, lambda: not app.is_running, what="q quit from the people panel")


async def test_slash_searches_the_log_highlights_each_match_and_n_N_go_between_them(server: TallyServer) -> None:
    """/ from the input opens the search; every entry holding the text is highlighted; Enter keeps it and n, N go
    up and down through the matches (round); Esc clears it and goes back to the input."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot, await Peer.join(server.url, "bob") as bob:
        log = app.dashboard.activity
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        for n, amount in enumerate((7, 11, 7, 13, 7)):
            await bob.send(type="add", op=str(n), amount=amount)
        await until(pilot, lambda: app.dashboard.total.total == 45 and log.settled)
        await pilot.press("slash")
        assert focused(app) is app.dashboard.search_box and app.dashboard.entry.input.value == ""
        await pilot.press(*"+7 ")
        await until(pilot, lambda: len(log.matches()) == 3, what="three matches")
        assert "“+7” 3 of 3" in str(log.border_title)
        drawn = [strip for strip in log.lines if "+7" in strip.text]
        assert drawn and all(any(seg.style and seg.style.reverse for seg in strip if "+7" in seg.text)
                             for strip in drawn), "every match highlighted"  # fmt: skip
        await pilot.press("enter")
        assert focused(app) is log and "“+7” 3 of 3, n/N" in str(log.border_title)
        await pilot.press("n")
        assert "2 of 3" in str(log.border_title) and not log.following
        await pilot.press("n", "n")
        assert "3 of 3" in str(log.border_title), "round again"
        await pilot.press("N")
        assert "1 of 3" in str(log.border_title)
        await pilot.press("escape")
        assert log.needle == "" and app.focused is app.dashboard.entry.input and "“" not in str(log.border_title)


async def test_copy_takes_whole_entries_even_when_they_wrap(server: TallyServer) -> None:
    """c on the log copies the entries in view, each whole, never a wrapped half starting mid-entry."""
    app = make_app(LinkOptions(server.url, "alice"))
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.dashboard.activity
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        long = "a note long enough to wrap over several lines of a narrow log, " * 3
        for n in range(12):
            log.note(f"{n}: {long}")
        await until(pilot, lambda: log.settled and log.max_scroll_y > 0)
        await pilot.press("f4", "k", "k", "k")
        await until(pilot, lambda: not log.following)
        await pilot.press("c")
        entries = copied[-1].splitlines()
        notes = [entry.text.plain for entry in log.entries]
        assert entries and all(entry in notes for entry in entries), "each line copied is an entry, whole"
        assert len(log.lines_in_view().splitlines()) > len(entries), "the entries wrapped on screen"


async def test_dialog_choices_have_letter_keys(server: TallyServer) -> None:
    """The quit question (adds pending): w waits, k keeps them and quits."""
    app = make_app(LinkOptions("ws://127.0.0.1:9", "alice"), autoconnect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.link.add(5)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert "W" in screen_text(app) and "ait" in screen_text(app)
        await pilot.press("w")
        await until(pilot, lambda: not isinstance(app.screen, ChoiceScreen) and app.is_running, what="waiting")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("q")  # q in the question does not ask it again
        await pilot.press("k")
        await until(pilot, lambda: not app.is_running, what="kept and quit")
    assert len(app.link.pending) == 1


async def test_keys_typed_right_after_ctrl_n_land_in_the_name(server: TallyServer) -> None:
    """ctrl+n then a name at once, as fast as a macro: every letter is in the box, replacing the old name."""
    for _ in range(5):
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test(size=(80, 24)) as pilot:
            model = app.model
            await until(pilot, lambda: app.dashboard.status.state == "connected")  # noqa: B023 (awaited here)
            await pilot.press("ctrl+n", *"zed", "enter")
            await until(pilot, lambda: model.name == "zed", what=f"renamed, not {model.name!r}")  # noqa: B023


async def test_a_name_with_a_bidi_control_is_refused_with_the_reason(server: TallyServer) -> None:
    """U+202E typed in the rename box: said by name under it, never silently dropped; nothing changes."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, RenameScreen) and app.focused is not None)
        await pilot.press(*"ev")
        # As a terminal sends it (the pilot's press() loses the character of a key it has no name for).
        app.screen.post_message(events.Key("right_to_left_override", "\u202e"))
        await pilot.press(*"il")
        assert reads_in_order(screen_text(app), "may not contain U+202E RIGHT-TO-LEFT OVERRIDE:"), screen_text(app)
        await pilot.press("enter")
        assert isinstance(app.screen, RenameScreen), "refused: the name typed is not the one in the box"
        box = app.screen.query_one(Input)
        box.value = ""
        box.value = "ev\u202eil"  # pasted, the character is in the box: refused as the server would
        await pilot.press("enter")
        assert isinstance(app.screen, RenameScreen) and reads_in_order(screen_text(app), "or bidirectional characters")
        await pilot.press("escape")
        assert app.model.name == "alice"


async def test_the_key_bar_fits_at_80_columns_and_keeps_help(server: TallyServer) -> None:
    """Whatever is focused, the key bar's keys fit whole in 80 columns, and ? Help is always among them."""
    app = make_app(LinkOptions(server.url, "alice"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        keys = app.dashboard.query_one(KeyBar)
        for key in ("f2", "f3", "f4", "escape"):
            await pilot.press(key)
            await pilot.pause()
            bar = keys.render_line(0).text.strip()
            assert bar.startswith("? Help") and len(bar) <= 78, bar
            pairs = {f"{key} {text}" for key, text, _ in keys.pairs()}
            shown = [pair for pair in pairs if pair in bar]
            assert all(part in pairs for part in bar.strip().split("  ")), f"only whole keys: {bar}"
            assert len(shown) >= 5, bar
        seen = Recorder(app)
        await pilot.click("#keys", offset=(3, 0))  # "? Help" can be clicked
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        assert seen.toasts == []
