"""Display names: the one rule for what a name may be.

The server applies it to every name it is sent; the dashboard applies it to
the name typed at the command line or in the rename dialog, so that a name the
server would refuse is refused before it is sent.
"""

from __future__ import annotations

import unicodedata

from server.protocol.errors import ErrorCode, ProtocolError
from server.protocol.messages import NAME_MAX_CHARS

__all__ = ["check_name", "is_unsafe"]

# Categories that can reorder, hide or fake text on a terminal: controls,
# format characters (bidi overrides, zero-width joiners), separators other
# than a plain space, surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def is_unsafe(char: str) -> bool:
    """True for a character that can reorder, hide or fake text on a terminal."""
    category = unicodedata.category(char)
    return category in _UNSAFE_CATEGORIES or (category == "Zs" and char != " ")


def check_name(raw: str) -> str:
    """Return the canonical form of a display name, or raise ``invalid_name``.

    Names are NFKC-normalised, trimmed, 1 to 32 characters, and free of
    control, format and bidirectional characters.
    """
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise ProtocolError(ErrorCode.INVALID_NAME, "name must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise ProtocolError(ErrorCode.INVALID_NAME, f"name must be at most {NAME_MAX_CHARS} characters")
    if any(is_unsafe(char) for char in name):
        raise ProtocolError(
            ErrorCode.INVALID_NAME,
            "name must not contain control, format or bidirectional characters",
        )
    if unicodedata.category(name[0]).startswith("M"):
        # A leading combining mark stacks onto whatever the terminal drew before it.
        raise ProtocolError(ErrorCode.INVALID_NAME, "name must not start with a combining mark")
    return name
