"""The choice dialogs at 80x24, the size the layout promises to fit: every word of each, and its buttons.

The pilot draws the real app at that size; a real terminal adds nothing to what
is checked here (tests/e2e types into real terminals where the keys are the test).
"""

from __future__ import annotations

import time

from tally.server.app import TallyServer
from tally.tui.app import TallyApp, make_app
from tally.tui.link import LinkOptions
from tally.tui.pending import Pending
from tally.tui.screens.choice import ChoiceScreen
from tests.support.dashboard import reads_in_order, screen_text, until
from tests.support.local import free_port

QUIT_BUTTONS = ("Wait", "Keep: quit, send them next time", "Discard and quit")


def drawn(app: TallyApp) -> bool:
    """The choice dialog is up and laid out (its text has a place on the screen)."""
    screen = app.screen
    return (
        isinstance(screen, ChoiceScreen)
        and bool(screen.query("#choice-text"))
        and (screen.query_one("#choice-text").region.height > 0)
    )


async def test_the_quit_dialog_can_be_read_at_80x24() -> None:
    """ctrl+q with one add waiting (no server): the whole question and its three buttons are on the screen."""
    app = make_app(LinkOptions(f"ws://127.0.0.1:{free_port()}", "ann"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "reconnecting", what="no server is listening")
        await pilot.press("3", "enter")
        await until(pilot, lambda: app.dashboard.status.pending == 1)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: drawn(app), what="the question, drawn")
        screen = screen_text(app)
        sentence = (
            "1 add has not reached the server yet. If you keep it, the next dashboard you open for this server "
            "sends it, counted once."
        )
        assert reads_in_order(screen, "Adds still waiting " + sentence), screen
        assert all(button in screen for button in QUIT_BUTTONS), screen
        assert not reads_in_order(screen, sentence + " A sentence that is not there."), "the check can fail"


async def test_the_different_ledger_dialog_can_be_read_at_80x24(server: TallyServer) -> None:
    """An add left for another ledger: the whole explanation, with the ledgers' ids, and both buttons."""
    pending = Pending()  # as a dashboard for that ledger would have left it
    pending.bind("0123456789abcdef")
    pending.add(2, at=time.time(), text="2")
    app = make_app(LinkOptions(server.url, "ann"), pending=pending)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: drawn(app), what="the question, drawn")
        screen = screen_text(app)
        found = app.model.ledger
        sentence = (
            f"The server at {server.url} now holds ledger {found}, not 0123456789abcdef, the one your 1 pending "
            "add was typed for. Nothing was sent to it. Keep them for when that ledger is back, or discard them?"
        )
        assert reads_in_order(screen, "This is a different ledger " + sentence), screen
        assert "Keep them for that ledger" in screen and "Discard them" in screen, screen
    assert (server.ledger.total, server.ledger.seq) == (0, 0), "held, not sent"
