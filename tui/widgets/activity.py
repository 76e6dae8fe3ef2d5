"""What just happened: adds, joins, leaves, renames, refusals, connection changes.

Entries are kept (the last 1,000) and drawn through the filter the user
chose: mine only, adds only, joins and leaves hidden. Scrolling up pauses
following: new lines are counted in the title ("12 new") until End (or
scrolling back to the bottom) resumes it. Joins, leaves and renames wait a
moment (``SETTLE``) so that many of them become one line ("30 joined"), and
an add that arrives after its author's "left" line is put before it. A search
(``/``) highlights every match and goes from one to the next (n, N); copy
takes the entries in view, whole, however they wrap. Lines are built in
:mod:`tui.widgets.entries` and drawn in the theme's colours.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Literal

from textual import events
from textual.binding import Binding
from textual.timer import Timer

from tally.server.protocol import ClientInfo, Error, Presence, Update
from tally.tui.colours import themed
from tally.tui.pending import PendingAdd
from tally.tui.text import plain_text
from tally.tui.widgets import entries
from tally.tui.widgets.entries import Entry, clock
from tally.tui.widgets.lines import LineLog

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
# New lines are written at most this often: under a flood, each write draws every line in view again (they
# all move up), the log's costliest frame.
WRITE_EVERY = 0.5

LogFilter = Literal["all", "mine", "adds", "quiet"]
FILTER_ORDER: tuple[LogFilter, ...] = ("all", "mine", "adds", "quiet")
FILTERS: dict[LogFilter, str] = {
    "all": "everything",
    "mine": "my adds only",
    "adds": "adds only",
    "quiet": "no joins or leaves",
}
MATCH = "reverse bold"


class ActivityLog(LineLog):
    BINDINGS = [
        Binding("end,G", "follow", "Follow", tooltip="Follow new lines again (scrolling up pauses)"),
        Binding("f", "cycle_filter", "Filter", tooltip="Show everything, my adds only, adds only, or no joins/leaves"),
        Binding("c", "copy_lines", "Copy", tooltip="Copy the entries in view, each whole"),
        Binding("n", "find(-1)", "Next", tooltip="After a search (/): the next match, further up"),
        Binding("N", "find(1)", "Previous", tooltip="After a search (/): the previous match, further down"),
        Binding("j", "scroll_down", "Down", show=False, tooltip="Down a line"),
        Binding("k", "scroll_up", "Up", show=False, tooltip="Up a line"),
        Binding("g", "scroll_home", "Top", show=False, tooltip="The first entry"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            id=id,
            classes=classes,
            markup=False,
            highlight=False,
            wrap=True,
            min_width=20,
            max_lines=4 * KEPT,  # entries wrap; those past KEPT are dropped first
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
        self._held: list[tuple[Presence, str | None, str]] = []  # each with the name before it, and its tag
        # How long joins and leaves are held to be grouped ("a moment"): tests set their own.
        self.settle = SETTLE
        self._unwritten: list[Entry] = []
        self._writing: Timer | None = None
        self._settle: Timer | None = None
        # The "left" line of each recent leaver: an add of theirs that comes later goes before it.
        self._left: dict[str, Entry] = {}
        # Each entry drawn, with its first line counted from the last clear (what scrolled off included).
        self._drawn: deque[tuple[int, Entry]] = deque()
        self.needle = ""  # what the search looks for, case apart ("" while none)
        self._match = -1  # which match is shown: an index into matches()
        self._refresh_title()

    def on_mount(self) -> None:
        # Lines are drawn in the theme's colours: a new theme draws them again.
        self.app.theme_changed_signal.subscribe(self, lambda theme: self._redraw(self.entries, keep_place=True))

    # -- writing ---------------------------------------------------------------------

    def add_entry(self, entry: Entry) -> None:
        self.entries.append(entry)
        if self._shown(entry):
            self._unwritten.append(entry)
            if self._writing is None:
                self._writing = self.set_timer(WRITE_EVERY, self._write_unwritten)

    def _write_unwritten(self) -> None:
        """Write what came since the last time: each write draws the whole log again, so not for every line."""
        self._writing = None
        written, self._unwritten = self._unwritten, []
        following = self.following or self.max_scroll_y == 0
        with self.together():
            for entry in written:
                self._draw(entry)
        if not written:
            return
        if following:
            # Now, not after the next frame: the new lines and the scroll to them are drawn in one frame, not two.
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.unseen += len(written)
            self._refresh_title()

    def _draw(self, entry: Entry) -> None:
        first = self._start_line + len(self.lines)  # where it starts (if the size is known: else, later)
        text = themed(entry.text, self.app.theme_variables)
        if self.needle:
            text.highlight_words([self.needle], MATCH, case_sensitive=False)
        self.write(text, scroll_end=False)  # the writer scrolls, once for all it wrote
        self._drawn.append((first, entry))
        while self._drawn and self._drawn[0][1] not in self.entries:
            self._drawn.popleft()  # dropped past KEPT

    def updates(self, updates: Sequence[Update], you: str | None, *, earlier: bool = False) -> None:
        if self._held and {u.client for u in updates} & {p.client.id for p, _, _ in self._held if p.event == "joined"}:
            self.write_presence()  # someone who just came added at once: say they came first
        skipped = len(updates) - MAX_LINES_PER_BATCH
        if skipped > 0:
            self.note(f"… {skipped:,} more updates")
        for update in updates[-MAX_LINES_PER_BATCH:]:
            entry = entries.update(update, you, tagged=update.name in self.ambiguous, earlier=earlier)
            left = self._left.get(update.client)
            if left is not None and left in self.entries:
                self._insert_before(left, entry)
            else:
                self.add_entry(entry)

    def _insert_before(self, later: Entry, entry: Entry) -> None:
        """Put ``entry`` before ``later`` (an add whose author's "left" line went out first)."""
        kept = list(self.entries)
        kept.insert(kept.index(later), entry)
        self.entries = deque(kept, maxlen=KEPT)
        self._redraw(self.entries, keep_place=True)

    def away(self, missed: Sequence[Update], you: str | None) -> None:
        """What others added while we were disconnected: each line if few, else one line per person."""
        if len(missed) <= MAX_LINES_PER_BATCH // 4:
            self.updates(missed, you)
            return
        for entry in entries.away(missed):
            self.add_entry(entry)

    def waiting(self, add: PendingAdd) -> None:
        """One of our adds typed while offline: it is kept, and sent when the server answers."""
        self.note(f"your {add.amount:+,} typed at {clock(add.typed_at)} is pending: sent when the server answers")

    def applied(self, add: PendingAdd, seq: int, at: float) -> None:
        """One of our adds that waited: say when it was typed and when it counted."""
        if at - add.typed_at >= LATE:
            self.note(
                f"your {add.amount:+,} typed at {clock(add.typed_at)} was applied at {clock(at)} (update {seq:,})"
            )

    def presence(self, batch: Sequence[tuple[Presence, str | None]]) -> None:
        """Joins, leaves and renames (each with the name before it): written together once they settle.

        Whether a name needs its tag is decided now, while a leaver still counts among those who share it.
        """
        self._held.extend((presence, before, self._tag(presence.client)) for presence, before in batch)
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
            group = [(p.client, tag) for p, _, tag in batch if p.event == event]
            if len(group) > GROUP_PRESENCE:
                shown = [(c.name, tag) for c, tag in group[:GROUP_PRESENCE]]
                lines = [(entries.crowd(shown, event, len(group)), [c for c, _ in group])]
            else:
                lines = [(entries.join_or_leave(c.name, tag, event), [c]) for c, tag in group]
            for entry, clients in lines:
                self.add_entry(entry)
                for client in clients if event == "left" else ():
                    self._left[client.id] = entry
        while len(self._left) > KEPT:
            del self._left[next(iter(self._left))]
        for presence, before, tag in batch:
            if presence.event == "renamed":
                self.add_entry(entries.renamed(before or "someone", presence.client.name, tag))

    def _tag(self, client: ClientInfo) -> str:
        return client.tag if client.name in self.ambiguous else ""

    def refused(self, error: Error, add: PendingAdd | None) -> None:
        self.add_entry(entries.refused(error, add))

    def note(self, text: str, style: str = "dim") -> None:
        self.add_entry(entries.note(text, style))

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

    def _redraw(self, kept: Iterable[Entry], *, keep_place: bool = False) -> None:
        paused = keep_place and not self.following  # the user scrolled up to read: stay there
        # Where they were, as a share of the whole: lines written again at another width wrap anew.
        place = self.scroll_y / self.max_scroll_y if self.max_scroll_y else 0.0
        if self._writing is not None:
            self._writing.stop()
            self._writing = None
        self._unwritten = []  # written below, with the rest
        with self.together():
            self.clear()
            self._drawn.clear()
            for entry in kept:
                if self._shown(entry):
                    self._draw(entry)
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
        if self.needle:
            found = len(self.matches())
            where = f"{self._match + 1:,} of {found:,}, n/N" if found and self._match >= 0 else f"{found:,} found"
            title += f" · “{plain_text(self.needle, limit=20)}” {where}"
        if self.unseen:
            title += f" · {self.unseen:,} new (End)"
        self.border_title = title

    # -- searching ------------------------------------------------------------------

    def search(self, text: str) -> int:
        """Highlight every entry holding ``text`` (any case) and show the newest; how many there are."""
        self.needle = text.strip()
        self._match = -1
        self._redraw(self.entries, keep_place=True)
        found = self.matches()
        if found:
            self._match = len(found) - 1
            self._show(found[self._match])
        self._refresh_title()
        return len(found)

    def matches(self) -> list[int]:
        """The first line of each entry shown that holds what is searched for, oldest first."""
        needle = self.needle.casefold()
        return [first for first, entry in self._drawn if needle and needle in entry.text.plain.casefold()]

    def action_find(self, step: int) -> None:
        """The next match up (``step`` -1) or down (1), going round."""
        found = self.matches()
        if not found:
            self.app.notify("Search the log with / first." if not self.needle else "No match.", title="Search")
            return
        self._match = (self._match + step) % len(found)
        self._show(found[self._match])
        self._refresh_title()

    def _show(self, first: int) -> None:
        self.following = False
        self.scroll_to(y=max(0, first - self._start_line - 1), animate=False, immediate=True)

    # -- copying ----------------------------------------------------------------------

    def in_view(self) -> list[Entry]:
        """The entries on screen now, each whole (an entry half in view counts)."""
        top = self._start_line + int(self.scroll_y)
        bottom = top + self.scrollable_content_region.height
        drawn = list(self._drawn)
        ends = [first for first, _ in drawn[1:]] + [self._start_line + len(self.lines)]
        return [entry for (first, entry), end in zip(drawn, ends, strict=True) if first < bottom and end > top]

    def selected_text(self) -> str:
        """The entries shown, as plain text, one a line (for the copy key)."""
        return "\n".join(entry.text.plain for entry in self.entries if self._shown(entry))

    def lines_in_view(self) -> str:
        """The lines on screen now, as drawn (wrapped), as plain text."""
        top = int(self.scroll_y)
        return "\n".join(strip.text.rstrip() for strip in self.lines[top : top + self.scrollable_content_region.height])

    def action_copy_lines(self) -> None:
        view = self.in_view()
        self.app.copy_to_clipboard("\n".join(entry.text.plain for entry in view))
        count = len(view)
        self.app.notify(f"{count} entr{'ies' if count != 1 else 'y'} of the log, whole", title="Copied", markup=False)
