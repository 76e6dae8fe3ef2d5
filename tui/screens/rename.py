"""A small dialog to change one's display name.

The name is checked as the server checks it (:func:`tally.server.protocol.check_name`)
while it is typed, and the reason shown under it. A character a terminal cannot show
as typed (a bidirectional control such as U+202E, which reverses what follows) would
otherwise vanish from the box without a word: it is refused by name instead. Keys typed
before the box is ready (right after ctrl+n) are kept and land in it, in order.
"""

from __future__ import annotations

import unicodedata

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tally.server.protocol import ProtocolError, check_name, is_unsafe

__all__ = ["RenameScreen"]

HINT = "Enter to save · Esc to cancel"


def describe(char: str) -> str:
    """A character by its code and name: U+202E RIGHT-TO-LEFT OVERRIDE."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'a control character')}"


class RenameScreen(ModalScreen[str | None]):
    """Returns the new, valid name, or ``None`` if cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self.input = Input(value=current, id="rename-input", max_length=64, select_on_focus=True)
        self.error = Label(HINT, id="rename-error", markup=False)
        self._early: list[str] = []  # typed before the box had the focus
        # Why the name typed is refused though the box cannot show it (a control it dropped): until cleared.
        self._refused = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-dialog"):
            yield Label("Your name, as others see it:", markup=False)
            yield self.input
            yield self.error

    def on_mount(self) -> None:
        self.input.focus()
        if self._early:
            self.input.value = "".join(self._early)
            self.input.cursor_position = len(self.input.value)
            self._early.clear()

    def on_key(self, event: events.Key) -> None:
        char = event.character
        if char is None:
            return
        if is_unsafe(char) and unicodedata.category(char) != "Cc":  # Cc: keys (Esc, Tab, Enter…), not text
            event.stop()
            self._refused = (f"names may not contain {describe(char)}: control, format and bidirectional "
                             "characters are refused (clear the box to start again)")  # fmt: skip
            self._refuse(self._refused)
        elif self.focused is not self.input and event.is_printable:
            event.stop()
            self._early.append(char)  # the dialog is not drawn yet: the box takes it when it is

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if not event.value:
            self._refused = ""
        if self._refused:
            self._refuse(self._refused)
            return
        if not event.value.strip():
            self._refuse("a name needs something visible")
            return
        try:
            check_name(event.value)
        except ProtocolError as exc:
            self._refuse(exc.message)
            return
        self.error.update(HINT)
        self.remove_class("-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._refused:
            self._refuse(self._refused)
            return
        try:
            name = check_name(event.value)
        except ProtocolError as exc:
            self._refuse(exc.message)
            return
        self.dismiss(name)

    def _refuse(self, reason: str) -> None:
        self.error.update(reason)
        self.add_class("-invalid")

    def action_cancel(self) -> None:
        self.dismiss(None)
