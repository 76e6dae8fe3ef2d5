"""The activity log's entries: one thing that happened each, built from ``Text`` parts.

Nothing from the network is ever markup: every name and message goes through
:func:`tui.text.plain_text` and into a ``Text`` part of its own. Colours are the plain
names green, red and yellow, which the log draws in the theme's colours.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text

from tally.server.protocol import Error, Update
from tally.tui.pending import PendingAdd
from tally.tui.text import plain_text

__all__ = ["Entry", "away", "join_or_leave", "note", "refused", "renamed", "update"]

Kind = Literal["add", "presence", "note"]


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """One entry of the log (however many lines it wraps to); ``mine``: about one of my adds."""

    kind: Kind
    text: Text
    mine: bool = False


def stamp(at: float | None = None) -> Text:
    return Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")


def name(who: str, tag: str = "") -> Text:
    text = Text(plain_text(who, limit=40), style="bold")
    if tag:
        text.append(f"#{plain_text(tag, limit=8)}", style="dim")
    return text


def signed(amount: int) -> Text:
    return Text(f"{amount:+,}", style="green" if amount > 0 else "red")


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def update(update: Update, you: str | None, *, tagged: bool, earlier: bool) -> Entry:
    """An add (or an undo) as everyone sees it; ``earlier``: from before we came (dimmed)."""
    mine = update.client == you
    who = name(update.name, update.tag if tagged else "")
    if mine:
        who.append(" (you)", style="dim")
    verb = f" undid update {update.undoes} with " if update.undoes is not None else " added "
    text = Text.assemble(stamp(update.at), who, verb, signed(update.amount), f"  → {update.total:,}")
    if earlier:
        text.stylize("dim")
    return Entry("add", text, mine)


def away(missed: Sequence[Update]) -> list[Entry]:
    """What others added while we were disconnected, one line per person."""
    by_name: dict[str, list[int]] = {}
    for missed_update in missed:
        by_name.setdefault(missed_update.name, []).append(missed_update.amount)
    entries = []
    for who, amounts in sorted(by_name.items(), key=lambda item: -len(item[1])):
        count = len(amounts)
        line = Text.assemble(stamp(), name(who), " ", signed(sum(amounts)), f" in {count:,} add{'s' * (count != 1)}")
        line.append(" while you were away", style="dim")
        entries.append(Entry("add", line))
    return entries


def join_or_leave(who: str, tag: str, event: str) -> Entry:
    return Entry("presence", Text.assemble(stamp(), name(who, tag), f" {event}"))


def crowd(names: Sequence[tuple[str, str]], event: str, count: int) -> Entry:
    """Many joins (or leaves) at one moment: one line, with the first few names."""
    shown = ", ".join(name(who, tag).plain for who, tag in names)
    return Entry("presence", Text.assemble(stamp(), (f"{count:,} {event}", "bold"), f": {shown}, …"))


def renamed(before: str, after: str, tag: str) -> Entry:
    return Entry("presence", Text.assemble(stamp(), name(before, tag), " is now ", name(after, tag)))


def refused(error: Error, add: PendingAdd | None) -> Entry:
    what = f"your {add.amount:+,}" if add is not None else "refused"
    line = Text.assemble(
        stamp(),
        (what + (" was refused " if add is not None else " "), "bold red"),
        (plain_text(error.code, limit=40), "red"),
        ": ",
        plain_text(error.message),
    )
    return Entry("note", line, mine=True)


def note(text: str, style: str = "dim") -> Entry:
    return Entry("note", Text.assemble(stamp(), (plain_text(text, limit=600), style)))
