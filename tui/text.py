"""Text for people: what the dashboard does to every string that came over the network, and durations.

Standard library only: ``tally add``, ``watch`` and ``status`` use it too.
"""

from __future__ import annotations

from tally.server.protocol import is_unsafe

__all__ = ["duration", "plain_text"]


def plain_text(text: str, *, limit: int = 200) -> str:
    """Make untrusted text safe for a terminal: drop unsafe characters, cap length.

    The dashboard applies this to everything that came over the network,
    whatever the server promised.
    """
    cleaned = "".join(" " if char in "\t\n\r" else char for char in text if char in "\t\n\r" or not is_unsafe(char))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def duration(seconds: float) -> str:
    """A span of time as people say it: "under a minute", "12 min", "2 h 5 min", "3 d"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes < 24 * 60 else f"{minutes // (24 * 60)} d"
