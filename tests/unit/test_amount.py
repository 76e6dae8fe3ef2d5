"""What the amount input accepts, and what it says when it does not."""

from __future__ import annotations

import pytest

from server.protocol import INT64_MAX, INT64_MIN
from tui.widgets import parse_amount


@pytest.mark.parametrize(
    ("text", "amount"),
    [("5", 5), ("+5", 5), ("-3", -3), (" 42 ", 42), ("1,000", 1000), ("-1_000_000", -1_000_000),
     (str(INT64_MAX), INT64_MAX), (str(INT64_MIN), INT64_MIN), ("007", 7)],
)  # fmt: skip
def test_integers_with_an_optional_sign_are_accepted(text: str, amount: int) -> None:
    """Signs, surrounding spaces and digit grouping are fine."""
    assert parse_amount(text) == amount


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "type a number"), ("abc", "not a whole number"), ("1.5", "not a whole number"), ("1e3", "not a whole"),
     ("--1", "not a whole"), ("+", "not a whole"), ("0", "0 changes nothing"), ("-0", "0 changes nothing"),
     (str(INT64_MAX + 1), "too large"), ("9" * 40, "too large"), ("[red]1", "not a whole")],
)  # fmt: skip
def test_anything_else_is_explained(text: str, reason: str) -> None:
    """Each refusal is a short sentence that fits under the input at 80 columns."""
    result = parse_amount(text)
    assert isinstance(result, str) and reason in result and len(result) <= 30
