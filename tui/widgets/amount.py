"""The amount input: each Enter adds exactly what was on the line when it was pressed.

Textual's Input posts ``Submitted`` and handles it later, after keys typed
since have already reached the box; clearing it then ate the next number
(``1`` Enter ``1`` Enter added 11). Here the line is read, checked and cleared
in the key handler itself, in order with the keys around it, at any speed,
from a keyboard macro or a paste.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label

from tally.tui.amount import parse_amount, preview

__all__ = ["AmountEntry", "AmountInput"]


def too_small(screen: Screen[Any]) -> bool:
    """The screen says "terminal too small" (the app's breakpoints): the dashboard is hidden."""
    return screen.has_class("-tiny-width") or screen.has_class("-tiny-height")


class AmountInput(Input):
    """An Input that takes its line at Enter, in order with the keys around it."""

    @dataclass
    class Entered(Message):
        """A valid amount was entered: ``text`` as typed."""

        amount: int
        text: str

    @dataclass
    class Rejected(Message):
        """Enter was pressed on text that is not a valid amount (it stays in the box)."""

        text: str
        reason: str

    max_amount: int | None = None  # the server's bound on one add, once known

    async def _on_key(self, event: events.Key) -> None:
        if too_small(self.screen):
            # Hidden behind "terminal too small": nothing may be typed, let alone added, blind.
            if event.key != "ctrl+q":
                event.stop()
                event.prevent_default()
            return
        if event.character in ("?", "/"):
            # Never part of an amount: help and the log's search, as on every other panel. (Not typed, so
            # they cannot bubble to the app's bindings: run those bindings' actions here.)
            event.stop()
            event.prevent_default()
            await self.run_action("app.help" if event.character == "?" else "app.dashboard('search')")
            return
        if event.key == "enter":
            # Handled here, not by the submit binding: bindings run after the keys queued behind Enter.
            event.stop()
            event.prevent_default()
            self.enter(self.value)

    def _on_paste(self, event: events.Paste) -> None:
        if too_small(self.screen):
            event.stop()
            event.prevent_default()
            return  # as for keys: nothing is entered blind
        # Pasted lines are typed lines: each one followed by a newline is entered.
        lines = event.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if len(lines) == 1:
            return  # Input's own handler inserts it
        event.stop()
        event.prevent_default()
        *complete, rest = lines
        for number, line in enumerate(complete):
            if not line.strip() and not self.value:
                continue  # a blank line in a pasted column adds nothing, and is no mistake
            at = self.cursor_position  # the first line lands where the cursor is, as if typed
            if not self.enter(self.value[:at] + line + self.value[at:]):
                # The rest would follow an add the user has not seen refused: stop, and say so.
                left = sum(1 for later in [*complete[number + 1 :], rest] if later.strip())
                if left:
                    self.notify(
                        f"The paste stopped at a line that is not an amount: the {left} line(s) after it "
                        "were not added.",
                        title="Paste stopped",
                        severity="warning",
                        markup=False,
                    )
                return
        self.insert_text_at_cursor(rest)

    def enter(self, text: str) -> bool:
        """Take ``text`` as one entered line; True if it was a valid amount."""
        result = parse_amount(text, max_amount=self.max_amount)
        if isinstance(result, str):
            self.value = text
            self.cursor_position = len(text)
            self.post_message(self.Rejected(text, result))
            return False
        self.value = ""
        self.post_message(self.Entered(result, text.strip()))
        return True


class AmountEntry(Vertical):
    """The input, plus the line under it: why the text is not valid, or what Enter will add."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # Not select-on-focus: a digit typed on another panel lands here, and the next must follow it.
        self.input = AmountInput(placeholder="+5 or -3, Enter", id="amount", select_on_focus=False)
        self.hint = Label("", id="amount-hint", markup=False)

    def compose(self) -> ComposeResult:
        yield self.input
        yield self.hint

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if not event.value.strip():
            self.show("")
            return
        result = parse_amount(event.value, max_amount=self.input.max_amount)
        if isinstance(result, str):
            self.show(result, error=True)
        else:
            self.show(preview(event.value, result) or "")

    def on_amount_input_rejected(self, event: AmountInput.Rejected) -> None:
        self.show(event.reason, error=True)

    def on_amount_input_entered(self, event: AmountInput.Entered) -> None:
        self.show("")

    def show(self, text: str, *, error: bool = False) -> None:
        self.hint.update(text)
        self.set_class(error, "-invalid")

    def focus_input(self) -> None:
        self.input.focus()
