"""The amount input: integers with an optional sign, explained inline when wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label

from server.protocol import INT64_MAX, INT64_MIN

__all__ = ["AmountEntry", "parse_amount"]

_AMOUNT = re.compile(r"[+-]?[0-9][0-9_,]*")


def parse_amount(text: str) -> int | str:
    """The integer typed, or a sentence saying why it is not one.

    Accepts an optional sign and digit grouping with ``,`` or ``_`` (``+1,000``).
    """
    text = text.strip().replace(" ", "")
    if not text:
        return "type a number like +5 or -3"
    if not _AMOUNT.fullmatch(text):
        return f"not a whole number: {text[:12]!r}"
    amount = int(text.replace(",", "").replace("_", ""))
    if amount == 0:
        return "0 changes nothing"
    if not INT64_MIN <= amount <= INT64_MAX:
        return "too large (64-bit limit)"
    return amount


class AmountEntry(Vertical):
    """An input plus the line that says why the input is not valid."""

    @dataclass
    class Submitted(Message):
        """A valid amount was entered (Enter)."""

        amount: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.input = Input(placeholder="Add an amount: +5, -3 … then Enter", id="amount")
        self.error = Label("", id="amount-error", markup=False)

    def compose(self) -> ComposeResult:
        yield self.input
        yield self.error

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        result = parse_amount(event.value) if event.value.strip() else 0
        self.show_error(result if isinstance(result, str) else "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        result = parse_amount(event.value)
        if isinstance(result, str):
            self.show_error(result)
            return
        event.input.clear()
        self.show_error("")
        self.post_message(self.Submitted(result))

    def show_error(self, text: str) -> None:
        self.error.update(text)
        self.set_class(bool(text), "-invalid")

    def focus_input(self) -> None:
        self.input.focus()
