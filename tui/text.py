"""Terminal-safe text: what the dashboard does to every string that came over the network."""

from __future__ import annotations

from tally.server.protocol import is_unsafe

__all__ = ["plain_text"]


def plain_text(text: str, *, limit: int = 200) -> str:
    """Make untrusted text safe for a terminal: drop unsafe characters, cap length.

    The dashboard applies this to everything that came over the network,
    whatever the server promised.
    """
    cleaned = "".join(" " if char in "\t\n\r" else char for char in text if char in "\t\n\r" or not is_unsafe(char))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
