"""The command palette's dashboard commands: every key's action, the panels' own, each saying its key.

A palette :class:`~textual.command.Provider`: its commands are read from the
app's bindings (so a command and its key cannot drift apart) and from the
panels' actions. The app's own (themes, screenshot, quit) stay Textual's
system commands (:meth:`tui.app.TallyApp.get_system_commands`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from tally.server.protocol.messages import SortKey
from tally.tui.screens.dashboard import Dashboard
from tally.tui.screens.help import key_label
from tally.tui.widgets.activity import FILTERS

__all__ = ["DashboardCommands", "commands"]

# Bindings whose command is the app's own (a system command), not listed twice.
APP_ACTIONS = ("quit", "command_palette")


def commands(dashboard: Dashboard) -> Iterator[tuple[str, str, Callable[[], object]]]:
    """Every dashboard command: (title, help, what it does)."""
    app = dashboard.app
    for binding in app.BINDINGS:
        if isinstance(binding, Binding) and binding.tooltip and binding.action not in APP_ACTIONS:
            key = key_label(binding.key)
            yield binding.description, f"{binding.tooltip} ({key})", partial(app.run_action, binding.action)
    for name, key in (("minute", "m"), ("hour", "h"), ("day", "d")):
        yield (f"History: last {name}", f"Chart the total over the last {name} (F2, then {key})",
               partial(dashboard.chart.action_window, name))  # fmt: skip
    sorts: tuple[tuple[SortKey, str], ...] = (("name", "n"), ("added", "a"), ("since", "s"))
    for sort, label in sorts:
        yield (f"People: sort by {sort}", f"Sort the people by {sort}; again to reverse (F3, then {label})",
               partial(dashboard.clients.action_sort, sort))  # fmt: skip
    yield "People: filter by name", "Show only names containing a text (F3, then f)", partial(_filter_people, dashboard)
    yield ("People: copy the highlighted row", "Exactly, as on the detail line (F3, then c)",
           dashboard.people.action_copy_row)  # fmt: skip
    for log_filter, label in FILTERS.items():
        yield (f"Activity: show {label}", "Filter the activity log (F4, then f cycles)",
               partial(dashboard.activity.set_filter, log_filter))  # fmt: skip
    yield (
        "Activity: copy the entries in view",
        "Each whole, however it wraps (F4, then c)",
        dashboard.activity.action_copy_lines,
    )
    yield (
        "Activity: search",
        "Highlight every entry holding a text; n and N go from one to the next (/)",
        dashboard.action_search,
    )
    yield "Activity: copy the whole log", "Every line the filter shows", dashboard.action_copy_log


def _filter_people(dashboard: Dashboard) -> None:
    dashboard.action_show("people")
    dashboard.people.action_filter()


class DashboardCommands(Provider):
    """The dashboard's commands, when the palette is opened over the dashboard."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        screen = self.screen
        return list(commands(screen)) if isinstance(screen, Dashboard) else []

    async def discover(self) -> Hits:
        for title, help, run in self._commands():
            yield DiscoveryHit(title, run, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help, run in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, text=title, help=help)
