"""Dialogs that ask the user to choose, each choice with a letter key: quitting with adds pending, a changed ledger."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label

__all__ = ["ChoiceScreen", "ledger_changed", "quit_with_pending"]


class ChoiceScreen(ModalScreen[str]):
    """A question, and buttons that dismiss it with their id, each with a letter key (the first letter of its
    label, underlined); Escape picks the first (the safe one)."""

    BINDINGS = [Binding("escape", "choose_first", "Cancel")]

    def __init__(self, title: str, text: str, choices: list[tuple[str, str]]) -> None:
        super().__init__(classes="choice")
        self.title_text = title
        self.text = text
        self.choices = choices
        self.letters = {label[0].lower(): key for key, label in choices}
        assert len(self.letters) == len(choices), "each choice needs a letter of its own"

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-dialog"):
            yield Label(self.title_text, id="choice-title", markup=False)
            yield Label(self.text, id="choice-text", markup=False)
            with Horizontal(id="choice-buttons"):
                for index, (key, label) in enumerate(self.choices):
                    shown = Content.assemble((label[0], "underline bold"), label[1:])
                    yield Button(shown, id=key, variant="primary" if index == 0 else "default")

    def on_key(self, event: events.Key) -> None:
        choice = self.letters.get((event.character or "").lower())
        if choice is not None:
            event.stop()
            self.dismiss(choice)

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id or self.choices[0][0])

    def action_choose_first(self) -> None:
        self.dismiss(self.choices[0][0])


def quit_with_pending(count: int, sent: int = 0) -> ChoiceScreen:
    """``sent`` of the ``count`` adds may have reached the server unanswered: discarding cannot take them back."""
    if not sent:
        waiting = f"{count} add{'s have' if count != 1 else ' has'} not reached the server yet."
    elif count == 1:
        waiting = (
            "1 add has not been answered yet. It may have reached the server, which may have counted it: "
            "discarding cannot take that back."
        )
    else:
        waiting = (
            f"{count} adds have not been answered yet. {'All' if sent == count else sent} of them may have "
            "reached the server, which may have counted them: discarding cannot take that back."
        )
    keep = (
        "If you keep it, the next dashboard you open for this server sends it, counted once."
        if count == 1
        else "If you keep them, the next dashboard you open for this server sends them, each counted once."
    )
    return ChoiceScreen(
        "Adds still waiting",
        f"{waiting} {keep}",
        [("wait", "Wait"), ("keep", "Keep: quit, send them next time"), ("discard", "Discard and quit")],
    )


def ledger_changed(url: str, expected: str, found: str, count: int) -> ChoiceScreen:
    return ChoiceScreen(
        "This is a different ledger",
        f"The server at {url} now holds ledger {found}, not {expected}, the one your {count} pending "
        f"add{'s were' if count != 1 else ' was'} typed for. Nothing was sent to it. Keep them for when "
        "that ledger is back, or discard them?",
        [("keep", "Keep them for that ledger"), ("discard", "Discard them")],
    )
