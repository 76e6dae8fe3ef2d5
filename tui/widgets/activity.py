"""What just happened: adds, joins, leaves, renames, refusals, connection changes.

Entries are kept (the last 1,000) and drawn through the filter the user
chose: mine only, adds only, joins and leaves hidden. Scrolling up pauses
following: new lines are counted in the title ("12 new") until End (or
scrolling back to the bottom) resumes it. Joins, leaves and renames wait a
moment (``SETTLE``) so that many of them become one line ("30 joined"), and
an add that arrives after its author's "left" line is put before it. Every
line is built from ``Text`` parts, so nothing from the network is ever markup.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import RichLog

from tally.server.protocol import ClientInfo, Error, Presence, Update
from tally.tui.pending import PendingAdd
from tally.tui.text import plain_text

__all__ = ["ActivityLog", "Entry", "LogFilter"]

# A flood is summarised, not written line by line: the total shows the result.
MAX_LINES_PER_BATCH = 20
# More joins (or leaves) than this at one moment are one line.
GROUP_PRESENCE = 3
KEPT = 1000
# An add applied this long after it was typed says both times.
LATE = 2.0
# Joins and leaves are held this long, so that a crowd arriving over a moment is one line.
SETTLE = 1.0
# New lines are written at most this often: under a flood, each write costs a layout of the screen.
WRITE_EVERY = 0.25

Kind = Literal["add", "presence", "note"]
LogFilter = Literal["all", "mine", "adds", "quiet"]
FILTER_ORDER: tuple[LogFilter, ...] = ("all", "mine", "adds", "quiet")
FILTERS: dict[LogFilter, str] = {
    "all": "everything",
    "mine": "my adds only",
    "adds": "adds only",
    "quiet": "no joins or leaves",
}


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    text: Text
    mine: bool = False


def _stamp(at: float | None = None) -> Text:
    return Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")


def _name(name: str, tag: str = "") -> Text:
    text = Text(plain_text(name, limit=40), style="bold")
    if tag:
        text.append(f"#{plain_text(tag, limit=8)}", style="dim")
    return text


def _signed(amount: int) -> Text:
    return Text(f"{amount:+,}", style="green" if amount > 0 else "red")


class ActivityLog(RichLog):
    BINDINGS = [
        Binding("end", "follow", "Follow", tooltip="Follow new lines again (scrolling up pauses)"),
        Binding("f", "cycle_filter", "Filter", tooltip="Show everything, my adds only, adds only, or no joins/leaves"),
        Binding("c", "copy_lines", "Copy", tooltip="Copy the lines in view"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            id=id,
            classes=classes,
            markup=False,
            highlight=False,
            wrap=True,
            min_width=20,
            max_lines=KEPT,
            auto_scroll=False,
        )
        self.entries: deque[Entry] = deque(maxlen=KEPT)
        self.filter: LogFilter = "all"
        self.unseen = 0
        # Following new lines until the user scrolls up: held, not derived from the scroll
        # position, which a resize moves away from the end (lines wrap anew) without anyone scrolling.
        self.following = True
        self._width = 0
        self.ambiguous: set[str] = set()  # names two people share: shown with their tags
        self._held: list[tuple[Presence, str | None]] = []
        # How long joins and leaves are held to be grouped ("a moment"): tests set their own.
        self.settle = SETTLE
        self._unwritten: list[Entry] = []
        self._writing: Timer | None = None
        self._settle: Timer | None = None
        # The "left" line of each recent leaver: an add of theirs that comes later goes before it.
        self._left: dict[str, Entry] = {}
        self._refresh_title()

    # -- writing ---------------------------------------------------------------------

    def add_entry(self, entry: Entry) -> None:
        self.entries.append(entry)
        if self._shown(entry):
            self._unwritten.append(entry)
            if self._writing is None:
                self._writing = self.set_timer(WRITE_EVERY, self._write_unwritten)

    def _write_unwritten(self) -> None:
        """Write what came since the last time: each write lays out the screen again, so not for every line."""
        self._writing = None
        entries, self._unwritten = self._unwritten, []
        following = self.following or self.max_scroll_y == 0
        for entry in entries:
            self.write(entry.text, scroll_end=following)
        if not following and entries:
            self.unseen += len(entries)
            self._refresh_title()

    def updates(self, updates: Sequence[Update], you: str | None, *, earlier: bool = False) -> None:
        if self._held and {u.client for u in updates} & {p.client.id for p, _ in self._held if p.event == "joined"}:
            self.write_presence()  # someone who just came added at once: say they came first
        skipped = len(updates) - MAX_LINES_PER_BATCH
        if skipped > 0:
            self.note(f"… {skipped:,} more updates")
        for update in updates[-MAX_LINES_PER_BATCH:]:
            entry = self._update_entry(update, you, earlier=earlier)
            left = self._left.get(update.client)
            if left is not None and left in self.entries:
                self._insert_before(left, entry)
            else:
                self.add_entry(entry)

    def _insert_before(self, later: Entry, entry: Entry) -> None:
        """Put ``entry`` before ``later`` (an add whose author's "left" line went out first)."""
        entries = list(self.entries)
        entries.insert(entries.index(later), entry)
        self.entries = deque(entries, maxlen=KEPT)
        self._redraw(self.entries, keep_place=True)

    def _update_entry(self, update: Update, you: str | None, *, earlier: bool) -> Entry:
        mine = update.client == you
        who = _name(update.name, update.tag if update.name in self.ambiguous else "")
        if mine:
            who.append(" (you)", style="dim")
        verb = f" undid update {update.undoes} with " if update.undoes is not None else " added "
        text = Text.assemble(_stamp(update.at), who, verb, _signed(update.amount), f"  → {update.total:,}")
        if earlier:
            text.stylize("dim")
        return Entry("add", text, mine)

    def away(self, missed: Sequence[Update], you: str | None) -> None:
        """What others added while we were disconnected: each line if few, else one line per person."""
        if len(missed) <= MAX_LINES_PER_BATCH // 4:
            self.updates(missed, you)
            return
        by_name: dict[str, list[int]] = {}
        for update in missed:
            by_name.setdefault(update.name, []).append(update.amount)
        for name, amounts in sorted(by_name.items(), key=lambda item: -len(item[1])):
            count = len(amounts)
            line = Text.assemble(
                _stamp(), _name(name), " ", _signed(sum(amounts)), f" in {count:,} add{'s' if count != 1 else ''}"
            )
            line.append(" while you were away", style="dim")
            self.add_entry(Entry("add", line))

    def waiting(self, add: PendingAdd) -> None:
        """One of our adds typed while offline: it is kept, and sent when the server answers."""
        self.note(
            f"your {add.amount:+,} typed at {time.strftime('%H:%M:%S', time.localtime(add.typed_at))} "
            "is pending: sent when the server answers"
        )

    def applied(self, add: PendingAdd, seq: int, at: float) -> None:
        """One of our adds that waited: say when it was typed and when it counted."""
        if at - add.typed_at < LATE:
            return
        self.note(
            f"your {add.amount:+,} typed at {time.strftime('%H:%M:%S', time.localtime(add.typed_at))} "
            f"was applied at {time.strftime('%H:%M:%S', time.localtime(at))} (update {seq:,})"
        )

    def presence(self, batch: Sequence[tuple[Presence, str | None]]) -> None:
        """Joins, leaves and renames (each with the name before it): written together once they settle."""
        self._held.extend(batch)
        if self._settle is None:
            self._settle = self.set_timer(self.settle, self.write_presence)

    @property
    def settled(self) -> bool:
        """No line waits to be written."""
        return not self._held and not self._unwritten

    @property
    def holding(self) -> int:
        """How many joins, leaves and renames are held for grouping."""
        return len(self._held)

    def write_presence(self) -> None:
        """The moment is over: write the joins, leaves and renames held, grouped."""
        if self._settle is not None:
            self._settle.stop()
            self._settle = None
        batch, self._held = self._held, []
        for event in ("joined", "left"):
            group = [p.client for p, _ in batch if p.event == event]
            if len(group) > GROUP_PRESENCE:
                names = ", ".join(plain_text(c.name, limit=20) for c in group[:GROUP_PRESENCE])
                line = Text.assemble(_stamp(), (f"{len(group):,} {event}", "bold"), f": {names}, …")
                entries = [(Entry("presence", line), group)]
            else:
                entries = [
                    (Entry("presence", Text.assemble(_stamp(), _name(c.name, self._tag(c)), f" {event}")), [c])
                    for c in group
                ]
            for entry, clients in entries:
                self.add_entry(entry)
                for client in clients if event == "left" else ():
                    self._left[client.id] = entry
        while len(self._left) > KEPT:
            del self._left[next(iter(self._left))]
        for presence, before in batch:
            if presence.event == "renamed":
                line = Text.assemble(_stamp(), _name(before or "someone"), " is now ", _name(presence.client.name))
                self.add_entry(Entry("presence", line))

    def _tag(self, client: ClientInfo) -> str:
        return client.tag if client.name in self.ambiguous else ""

    def refused(self, error: Error, add: PendingAdd | None) -> None:
        what = f"your {add.amount:+,}" if add is not None else "refused"
        line = Text.assemble(
            _stamp(),
            (what + (" was refused " if add is not None else " "), "bold red"),
            (plain_text(error.code, limit=40), "red"),
            ": ",
            plain_text(error.message),
        )
        self.add_entry(Entry("note", line, mine=True))

    def note(self, text: str, style: str = "dim") -> None:
        self.add_entry(Entry("note", Text.assemble(_stamp(), (plain_text(text, limit=600), style))))

    # -- reading -------------------------------------------------------------------

    def _shown(self, entry: Entry) -> bool:
        if self.filter == "mine":
            return entry.mine
        if self.filter == "adds":
            return entry.kind == "add"
        if self.filter == "quiet":
            return entry.kind != "presence"
        return True

    def set_filter(self, log_filter: LogFilter) -> None:
        self.filter = log_filter
        self._redraw(self.entries)

    def action_cycle_filter(self) -> None:
        self.set_filter(FILTER_ORDER[(FILTER_ORDER.index(self.filter) + 1) % len(FILTER_ORDER)])

    def _redraw(self, entries: Iterable[Entry], *, keep_place: bool = False) -> None:
        paused = keep_place and not self.following  # the user scrolled up to read: stay there
        # Where they were, as a share of the whole: lines written again at another width wrap anew.
        place = self.scroll_y / self.max_scroll_y if self.max_scroll_y else 0.0
        if self._writing is not None:
            self._writing.stop()
            self._writing = None
        self._unwritten = []  # written below, with the rest
        self.clear()
        for entry in entries:
            if self._shown(entry):
                self.write(entry.text, scroll_end=False)
        if paused:
            self.scroll_to(y=round(place * self.max_scroll_y), animate=False, immediate=True)
            self.following = False  # scroll_to may have met the end on the way: still reading
            return
        self.following = True
        self.scroll_end(animate=False)
        self.unseen = 0
        self._refresh_title()

    def clear_entries(self) -> None:
        self.entries.clear()
        self._redraw(())

    def action_follow(self) -> None:
        self.following = True
        self.scroll_end(animate=False)
        self.unseen = 0
        self._refresh_title()

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width:
            # Lines are wrapped when written: write them again at the new width.
            self._width = event.size.width
            self._redraw(self.entries, keep_place=True)
        elif self.following:
            self.call_after_refresh(self.scroll_end, animate=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.following = self.is_vertical_scroll_end or self.max_scroll_y == 0
        if self.unseen and self.is_vertical_scroll_end:
            self.unseen = 0
            self._refresh_title()

    def _refresh_title(self) -> None:
        title = "Activity"
        if self.filter != "all":
            title += f" · {FILTERS[self.filter]}"
        if self.unseen:
            title += f" · {self.unseen:,} new (End)"
        self.border_title = title

    def selected_text(self) -> str:
        """The lines shown, as plain text (for the copy key)."""
        return "\n".join(entry.text.plain for entry in self.entries if self._shown(entry))

    def lines_in_view(self) -> str:
        """The lines on screen now, as plain text."""
        top = int(self.scroll_y)
        return "\n".join(strip.text.rstrip() for strip in self.lines[top : top + self.scrollable_content_region.height])

    def action_copy_lines(self) -> None:
        text = self.lines_in_view()
        self.app.copy_to_clipboard(text)
        count = text.count("\n") + 1 if text else 0
        self.app.notify(f"{count} line{'s' if count != 1 else ''} of the log", title="Copied", markup=False)
