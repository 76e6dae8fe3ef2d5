"""Display names: the one rule for what a name may be.

The server applies it to every name it is sent; the dashboard applies it to
the name typed at the command line or in the rename dialog, so that a name the
server would refuse is refused before it is sent.

A name must be readable and must not pass for someone else's: no control,
format or bidirectional characters; something visible; no stack of combining
marks; at most 32 terminal columns; and no mixing of Latin, Cyrillic and
Greek letters (``alice`` spelt with a Cyrillic ``a`` is refused). Two people may
still pick the same name; dashboards tell them apart by their tags.
"""

from __future__ import annotations

import unicodedata

from tally.server.protocol.errors import ErrorCode, ProtocolError
from tally.server.protocol.messages import NAME_MAX_CHARS

__all__ = ["NAME_MAX_COLUMNS", "check_name", "columns", "is_unsafe"]

NAME_MAX_COLUMNS = 32
MAX_COMBINING_RUN = 2

# Categories that can reorder, hide or fake text on a terminal: controls,
# format characters (bidi overrides, zero-width joiners), separators other
# than a plain space, surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and symbols that draw as nothing at all.
_BLANK = frozenset("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0\u034f")
# Scripts whose letters look alike: a name may use one of them, not several.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def is_unsafe(char: str) -> bool:
    """True for a character that can reorder, hide or fake text on a terminal."""
    category = unicodedata.category(char)
    return category in _UNSAFE_CATEGORIES or (category == "Zs" and char != " ")


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes: wide characters two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) == "Mn":
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _refuse(reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_NAME, f"name must {reason}")


def check_name(raw: str) -> str:
    """Return the canonical form of a display name, or raise ``invalid_name`` saying why."""
    if raw.isascii() and raw.isprintable():
        # Printable ASCII is its own NFKC form, one column a character, safe, visible unless a
        # space, and Latin: only emptiness and length are left to check. Every hello is checked,
        # so a join storm goes faster for it; anything refused is refused below, with its reason.
        name = raw.strip()
        if name and len(name) <= NAME_MAX_CHARS:
            return name
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise _refuse("not be empty")
    if len(name) > NAME_MAX_CHARS or columns(name) > NAME_MAX_COLUMNS:
        raise _refuse(f"be at most {NAME_MAX_CHARS} characters and {NAME_MAX_COLUMNS} columns wide")
    if any(is_unsafe(char) for char in name):
        raise _refuse("not contain control, format or bidirectional characters")
    if unicodedata.category(name[0]).startswith("M"):
        # A leading combining mark stacks onto whatever the terminal drew before it.
        raise _refuse("not start with a combining mark")
    run = 0
    for char in name:
        run = run + 1 if unicodedata.category(char).startswith("M") else 0
        if run > MAX_COMBINING_RUN:
            raise _refuse(f"not stack more than {MAX_COMBINING_RUN} combining marks on one character")
    if not any(char not in _BLANK and unicodedata.category(char)[0] in "LNPS" for char in name):
        raise _refuse("contain something visible")
    scripts = {unicodedata.name(char, "").split(" ")[0] for char in name if unicodedata.category(char).startswith("L")}
    if len(scripts & _LOOKALIKE_SCRIPTS) > 1:
        raise _refuse("not mix Latin, Cyrillic and Greek letters (they can look alike)")
    return name
