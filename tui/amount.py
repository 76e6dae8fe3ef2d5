"""What the amount input accepts: whole numbers, grouped only in threes, within the server's bound.

Pure, so that every rule is tested without a terminal. Ambiguous input is
refused rather than guessed at: ``1,5`` is 1.5 in much of the world, so a
comma (or a space, or an underscore) is only accepted between groups of
three digits.
"""

from __future__ import annotations

import re

from tally.server.protocol import INT64_MAX, INT64_MIN

__all__ = ["parse_amount", "preview"]

_PLAIN = re.compile(r"[0-9]+")
_GROUPED = re.compile(r"[0-9]{1,3}(?:([,_ ])[0-9]{3})(?:\1[0-9]{3})*")
_SEPARATORS = {",": "commas", "_": "_", " ": "spaces"}


def parse_amount(text: str, *, max_amount: int | None = None) -> int | str:
    """The integer typed, or a short sentence (at most 30 characters) saying why it is not one.

    Accepts an optional sign and digits grouped in threes by commas, spaces or
    underscores (``+1,000``, ``-1 000 000``). ``max_amount`` is the server's
    bound on one add, when known.
    """
    text = text.strip()
    if not text:
        return "type a number like +5 or -3"
    sign, digits = (text[0], text[1:].lstrip()) if text[0] in "+-" else ("", text)
    if not digits:
        return "not a whole number"
    if not _PLAIN.fullmatch(digits) and not _GROUPED.fullmatch(digits):
        return _why_not(digits)
    amount = int(sign + re.sub(r"[,_ ]", "", digits))
    if amount == 0:
        return "0 changes nothing"
    if not INT64_MIN <= amount <= INT64_MAX:
        return "too large (64-bit limit)"
    if max_amount is not None and abs(amount) > max_amount:
        return f"at most ±{max_amount:,}"[:30]
    return amount


def _why_not(digits: str) -> str:
    if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+", digits):
        return "no exponents: write it out"
    if "." in digits and re.fullmatch(r"[0-9,._ ]+", digits):
        return "whole numbers only, no ."
    used = [name for separator, name in _SEPARATORS.items() if separator in digits]
    if re.fullmatch(r"[0-9,_ ]+", digits):
        if len(used) > 1:
            return "use one kind of separator"
        return f"{used[0]} only between 3 digits"
    return "not a whole number"


def preview(text: str, amount: int) -> str | None:
    """What Enter will add, when the text does not say it plainly (grouping, leading zeros); else None."""
    plain = text.strip().lstrip("+")
    return None if plain == str(amount) else f"Enter adds {amount:+,}"
