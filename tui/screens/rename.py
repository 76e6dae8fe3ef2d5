"""A small dialog to change one's display name."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tally.server.protocol import ProtocolError, check_name

__all__ = ["RenameScreen"]


class RenameScreen(ModalScreen[str | None]):
    """Returns the new, valid name, or ``None`` if cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-dialog"):
            yield Label("Your name, as others see it:", markup=False)
            yield Input(value=self.current, id="rename-input", max_length=64)
            yield Label("Enter to save · Esc to cancel", id="rename-error", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            name = check_name(event.value)
        except ProtocolError as exc:
            self.query_one("#rename-error", Label).update(exc.message)
            self.add_class("-invalid")
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)
