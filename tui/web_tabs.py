"""What ``tally web`` allows each browser tab: how many dashboards, how large, and for how long without input.

Each tab costs a dashboard process (about 50 MiB, docs/operations.md), so one client
opening tabs in a loop must not start one each. This module holds the rules and the
count, with no sockets and no clock of its own; ``tally.tui.web`` applies them.

- **Caps.** At most ``max_tabs`` dashboards at once, and ``max_tabs_per_client`` for
  one client address (behind a reverse proxy every tab comes from the proxy's address:
  raise it to ``max_tabs`` there). Past either the tab is refused before any process
  starts: 429 for a client over its share, 503 when the server is full.
- **Size.** A tab says how large its terminal is; the dashboard draws every cell of
  it, so a tab asking for 5000 x 5000 cost 345 MiB and 5 MB a second of output. Sizes
  are clamped to ``MAX_COLUMNS`` x ``MAX_ROWS`` (a 4K screen at the page's font size).
- **Idle.** A tab with no input (keys, mouse, resize or focus) for ``idle_timeout``
  seconds is closed, and its dashboard quits; 0 never closes one (a wall display).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "INPUT", "MAX_COLUMNS", "MAX_ROWS", "Refusal", "TabLimits", "Tabs", "add_tab_options", "clamp_font", "clamp_size",
]  # fmt: skip

MAX_COLUMNS, MAX_ROWS = 400, 150
MIN_COLUMNS, MIN_ROWS = 20, 5
# What a tab sends that shows a person is there (textual.js also sends one "ping" when it connects).
INPUT = frozenset({"stdin", "resize", "focus"})


@dataclass(frozen=True, slots=True)
class TabLimits:
    max_tabs: int = 20
    max_tabs_per_client: int = 5
    idle_timeout: float = 1800.0


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1e9:  # NaN and infinity too
        raise argparse.ArgumentTypeError(f"must be 0 (never) or a number of seconds, not {text}")
    return value


def add_tab_options(parser: argparse.ArgumentParser) -> None:
    """``tally web``'s options for these rules, with their defaults (``TabLimits``'s) in the help."""
    default = TabLimits()
    parser.add_argument("--max-tabs", type=_count, default=default.max_tabs, metavar="N",
                        help=f"dashboards at once, one process of about 50 MiB each (default: {default.max_tabs}); "
                        "past it the page says there is no room (HTTP 503)")  # fmt: skip
    parser.add_argument("--max-tabs-per-client", type=_count, default=default.max_tabs_per_client, metavar="N",
                        help=f"dashboards one client address may have (default: {default.max_tabs_per_client}; "
                        "HTTP 429 past it); behind a reverse proxy every tab comes from the proxy's address: raise "
                        "it to --max-tabs there")  # fmt: skip
    parser.add_argument("--idle-timeout", type=_seconds, default=default.idle_timeout, metavar="SECONDS",
                        help=f"close a tab, and quit its dashboard, after this long without input (default: "
                        f"{default.idle_timeout:g}, half an hour; 0: never, for a wall display)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a tab gets no dashboard: the HTTP status, and a sentence for the person."""

    status: HTTPStatus
    reason: str
    retry_after: int


def _dimension(value: object, low: int, high: int) -> int | None:
    """A whole number of cells from what a tab sent (text from a query string, or a JSON number), clamped to
    ``low``..``high``; None for anything else."""
    if isinstance(value, str):
        digits = value.strip().removeprefix("-")
        if not digits.isdecimal() or not digits.isascii():
            return None
        if len(digits) > 9:  # int() of thousands of digits is slow, or refused
            return low if value.strip().startswith("-") else high
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(low, min(high, value))


def clamp_size(width: object, height: object) -> tuple[int, int] | None:
    """The terminal size a tab gets for the one it asked for, within the bounds; None if it is not a size."""
    columns, rows = _dimension(width, MIN_COLUMNS, MAX_COLUMNS), _dimension(height, MIN_ROWS, MAX_ROWS)
    return None if columns is None or rows is None else (columns, rows)


def clamp_font(text: str) -> int:
    """The page's font size in pixels for ``?fontsize=``: 16 for nonsense, else 8 to 48 (smaller fonts make
    more cells of the same window, and the terminal size is clamped anyway)."""
    return 16 if not text.isdecimal() or len(text) > 3 else max(8, min(48, int(text)))


@dataclass
class Tabs:
    """The dashboards running now, by client address."""

    limits: TabLimits
    by_client: Counter[str] = field(default_factory=Counter)

    @property
    def open(self) -> int:
        return self.by_client.total()

    def refusal(self, client: str) -> Refusal | None:
        """Why ``client`` may not open a tab now, or None if it may."""
        limits = self.limits
        if self.by_client[client] >= limits.max_tabs_per_client:
            return Refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"You have {self.by_client[client]} dashboards open already, the most one address may have "
                f"(--max-tabs-per-client). Close one of your tabs, then reload this page.",
                retry_after=10,
            )
        if self.open >= limits.max_tabs:
            return Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"{self.open} dashboards are open, the most this server runs at once (--max-tabs). "
                "Try again when someone closes a tab.",
                retry_after=60,
            )
        return None

    def opened(self, client: str) -> None:
        self.by_client[client] += 1

    def closed(self, client: str) -> None:
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]
