"""What the amount input accepts, and what it says when it does not."""

from __future__ import annotations

import pytest

from tally.server.protocol import INT64_MAX, INT64_MIN
from tally.tui.amount import parse_amount, preview


@pytest.mark.parametrize(
    ("text", "amount"),
    [("5", 5), ("+5", 5), ("-3", -3), (" 42 ", 42), ("1,000", 1000), ("-1_000_000", -1_000_000),
     ("1 000 000", 1_000_000), ("+ 7", 7), ("12,345,678", 12_345_678),
     (str(INT64_MAX), INT64_MAX), (str(INT64_MIN), INT64_MIN), ("007", 7)],
)  # fmt: skip
def test_integers_with_an_optional_sign_are_accepted(text: str, amount: int) -> None:
    """Signs, surrounding spaces and digit grouping in threes are fine."""
    assert parse_amount(text) == amount


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "type a number"), ("abc", "not a whole number"), ("1.5", "whole numbers only"), ("1e3", "no exponents"),
     ("--1", "not a whole"), ("+", "not a whole"), ("0", "0 changes nothing"), ("-0", "0 changes nothing"),
     (str(INT64_MAX + 1), "too large"), ("9" * 40, "too large"), ("[red]1", "not a whole"),
     ("1,5", "commas only between 3 digits"), ("5 5", "spaces only between 3 digits"),
     ("1,,0", "commas only between 3 digits"), ("1,0000", "commas only"), ("12,34,567", "commas only"),
     ("1,000_000", "one kind of separator"), ("1_0", "_ only between 3 digits")],
)  # fmt: skip
def test_anything_else_is_explained(text: str, reason: str) -> None:
    """Each refusal is a short sentence that fits under the input at 80 columns."""
    result = parse_amount(text)
    assert isinstance(result, str) and reason in result and len(result) <= 30


def test_the_servers_bound_on_one_add_is_checked_before_sending() -> None:
    """With the bound from the welcome, a larger add is refused here, as the server would."""
    assert parse_amount("1,000", max_amount=1000) == 1000
    assert parse_amount("-1001", max_amount=1000) == "at most ±1,000"


@pytest.mark.parametrize(
    ("text", "shown"),
    [("5", None), ("+5", None), ("-3", None), ("1,000", "Enter adds +1,000"), ("007", "Enter adds +7"),
     ("-1 000", "Enter adds -1,000")],
)  # fmt: skip
def test_unusual_input_shows_what_it_will_add(text: str, shown: str | None) -> None:
    """Grouping or leading zeros get a preview of the amount; a plain number needs none."""
    amount = parse_amount(text)
    assert isinstance(amount, int) and preview(text, amount) == shown
