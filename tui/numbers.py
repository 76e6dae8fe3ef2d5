"""Numbers for narrow places: a compact form that is never silently cut, and round axis ticks.

Pure, so that the rules are tested without a terminal.
"""

from __future__ import annotations

import math

__all__ = ["compact", "compact_words", "fit", "scaled", "ticks"]

# Short scale, as people say them aloud: 55.9B is fifty-five point nine billion. Past trillions the
# letters are Qa and Qi (quadrillion, quintillion), as in finance; the words are spelled out where there
# is room (the total's caption), and never an exponent: 9.22E18 means nothing to most people.
SCALES = (
    (10**18, "Qi", "quintillion"),
    (10**15, "Qa", "quadrillion"),
    (10**12, "T", "trillion"),
    (10**9, "B", "billion"),
    (10**6, "M", "million"),
    (10**3, "K", "thousand"),
)


def scaled(value: int) -> tuple[str, str, str]:
    """``value`` as three significant digits and its scale: ("-9.22", "Qi", "quintillion"); ("999", "", "")."""
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size < 1000:
        return f"{sign}{size}", "", ""
    for index, (scale, letters, word) in enumerate(SCALES):
        if size >= scale:
            shown = size / scale
            if f"{shown:.3g}" == "1e+03" and index:  # 999,999 is 1M, never 1000K
                scale, letters, word = SCALES[index - 1]
                shown = size / scale
            return f"{sign}{shown:.3g}", letters, word
    raise AssertionError("unreachable")  # pragma: no cover


def compact(value: int, *, signed: bool = False) -> str:
    """``value`` in at most 7 characters (8 with a sign): 999, 12.3K, 55.9B, 9.22Qi. Never an exponent."""
    number, letters, _ = scaled(value)
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{number}{letters}"


def compact_words(value: int) -> tuple[str, str]:
    """``value`` for the big digits and the word of its scale: ("9.22", "quintillion"); ("999", "")."""
    number, _, word = scaled(value)
    return number, word


def fit(value: int, width: int, *, signed: bool = False) -> str:
    """The exact grouped value if it fits in ``width`` characters, else its compact form."""
    exact = f"{value:+,}" if signed else f"{value:,}"
    return exact if len(exact) <= width else compact(value, signed=signed)


def ticks(low: int, high: int, count: int = 4) -> list[int]:
    """Round values from ``low`` to ``high`` (about ``count`` steps), for an axis; both ends included."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)))
    first = -(-low // step) * step  # the first multiple of step at or above low
    # The ends tell the range; inner ticks too close to them to read apart are dropped.
    margin = step * 0.3
    inner = [value for value in range(first, high + 1, step) if low + margin < value < high - margin]
    return [low, *inner, high]
