"""Numbers for narrow places: tui.numbers."""

from __future__ import annotations

from tally.server.protocol import INT64_MAX, INT64_MIN
from tally.tui.numbers import compact, compact_words, fit, ticks


def test_compact_keeps_three_significant_digits_and_a_suffix() -> None:
    """Thousands to trillions get K, M, B, T; rounding never shows 1000K."""
    cases = {0: "0", 999: "999", 1000: "1K", 1234: "1.23K", 55_912_345_678: "55.9B", 999_999: "1M",
             10**12: "1T", -250_000: "-250K"}  # fmt: skip
    for value, text in cases.items():
        assert compact(value) == text, value


def test_compact_names_quadrillions_and_quintillions_never_an_exponent_and_stays_short() -> None:
    """Up to the 64-bit limits: Qa and Qi (the words where there is room), never "E18"; at most 8 characters."""
    assert compact(INT64_MAX) == "9.22Qi" and compact(INT64_MIN) == "-9.22Qi"
    assert compact(999_999_999_999_999) == "1Qa" and compact(999_999_999_999_999_999) == "1Qi"
    assert compact_words(INT64_MAX) == ("9.22", "quintillion")
    assert compact_words(1_234_567_890_123) == ("1.23", "trillion")
    for value in (
        7,
        12_345,
        10**9 + 1,
        10**15,
        INT64_MAX,
        INT64_MIN,
        -999_999_999_999,
        *(10**n - 1 for n in range(19)),
    ):
        text = compact(value, signed=True)
        assert len(text) <= 8 and "E" not in text and "e" not in text, value
    assert compact(5, signed=True) == "+5" and compact(0, signed=True) == "0"


def test_fit_is_exact_when_it_fits_and_compact_otherwise() -> None:
    """A number is never cut: the exact grouped value, or its compact form."""
    assert fit(1234, 6, signed=True) == "+1,234"
    assert fit(55_912_345_678, 8, signed=True) == "+55.9B"
    assert fit(55_912_345_678, 20) == "55,912,345,678"


def test_ticks_are_round_and_include_both_ends() -> None:
    """The ends say the range; the inner ticks are round numbers not crowding them."""
    assert ticks(0, 100, 3) == [0, 50, 100]
    assert ticks(1200, 1290) == [1200, 1225, 1250, 1275, 1290]
    assert ticks(-3, 1179, 3) == [-3, 500, 1000, 1179]
    assert ticks(3, 3) == [3]
    values = ticks(-5, 10**18)
    assert values[0] == -5 and values[-1] == 10**18 and values == sorted(values)
