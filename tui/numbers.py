"""Numbers for narrow places: a compact form that is never silently cut, and round axis ticks.

Pure, so that the rules are tested without a terminal.
"""

from __future__ import annotations

import math

__all__ = ["compact", "fit", "ticks"]

# Short scale, as people say them aloud: 55.9B is fifty-five point nine billion.
_SUFFIXES = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


def compact(value: int, *, signed: bool = False) -> str:
    """``value`` in at most 7 characters (8 with a sign): 999, 12.3K, 55.9B, 9.22E18.

    Past trillions it is scientific: quadrillions and up have no name people share.
    """
    sign = ("+" if value > 0 else "") if signed else ""
    sign = "-" if value < 0 else sign
    size = abs(value)
    if size < 1000:
        return f"{sign}{size}"
    if size >= 999_500_000_000_000:  # what would round to 1000T
        mantissa, exponent = f"{size:.2E}".split("E")
        return f"{sign}{mantissa}E{int(exponent)}"
    for scale, suffix in _SUFFIXES:
        if size >= scale:
            shown = size / scale
            # Three significant digits, but never "1000K": that is 1.00M.
            text = f"{shown:.3g}" if shown < 999.5 else f"{shown / 1000:.3g}"
            bigger = {"K": "M", "M": "B", "B": "T"}
            return f"{sign}{text}{suffix if shown < 999.5 else bigger[suffix]}"
    raise AssertionError("unreachable")  # pragma: no cover


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
