"""What the user does in the dashboard: the app's actions, its keys' help and its palette commands.

A base class of :class:`tui.app.TallyApp`, kept apart from what the
connection tells the app. Every command in the palette says its key; the
keys come from the same bindings that handle them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import platformdirs
from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from tally.tui.config import save_value
from tally.tui.connection import Link
from tally.tui.model import Model
from tally.tui.screens.choice import quit_with_pending
from tally.tui.screens.help import HelpScreen, key_label
from tally.tui.screens.rename import RenameScreen
from tally.tui.urls import public_url
from tally.tui.widgets import ActivityLog, AmountEntry, AmountInput, ClientsTable, HistoryChart, PeoplePanel, StatusBar
from tally.tui.widgets.activity import FILTERS, LogFilter
from tally.tui.widgets.amount import too_small

__all__ = ["Actions", "screenshot_directory"]

# Keys typed anywhere that start an amount.
AMOUNT_KEYS = frozenset("0123456789+-")


def screenshot_directory() -> Path:
    """Where screenshots go: the Downloads directory if there is one, else home, else here."""
    for candidate in (platformdirs.user_downloads_path(), Path.home(), Path.cwd()):
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    return Path.cwd()


class Actions(App[None]):
    # Built by TallyApp.__init__.
    model: Model
    link: Link
    autoconnect: bool
    config: Path | None
    status: StatusBar
    entry: AmountEntry
    clients: ClientsTable
    people: PeoplePanel
    chart: HistoryChart
    activity: ActivityLog
    panels: dict[str, Widget]

    @on(AmountInput.Entered)
    def add(self, message: AmountInput.Entered) -> None:
        op = self.link.add(message.amount, text=message.text)
        add = self.model.pending.get(op)
        if add is not None and not self.link.connected:
            # Offline: list it with the time it was typed; the total panel shows where they lead.
            self.activity.waiting(add)

    def on_key(self, event: events.Key) -> None:
        # A digit, + or - typed anywhere but in a text box starts an amount.
        if too_small(self.screen):
            return  # "terminal too small": nothing is typed blind (the input's own keys stop there too)
        if event.character in AMOUNT_KEYS and len(self.screen_stack) == 1 and not isinstance(self.focused, Input):
            event.stop()
            self.entry.focus_input()
            self.entry.input.insert_text_at_cursor(event.character)

    def action_undo(self) -> None:
        if too_small(self.screen):
            return  # an undo nobody can see would be an add made blind
        mine = self.model.undoable()
        if mine is None:
            self.notify("Nothing of yours to undo yet.", title="Undo", markup=False)
            return
        mine.undone = True  # a second ctrl+z before the answer takes back the add before it
        self.link.add(-mine.amount, undo=mine.op)
        self.activity.note(f"undoing your {mine.amount:+,} (update {mine.seq:,})")

    def action_focus_input(self) -> None:
        self.entry.focus_input()

    def action_rename(self) -> None:
        def renamed(name: str | None) -> None:
            if name is not None and name != self.model.name:
                self.link.rename(name)
                self.sub_title = f"{name} @ {public_url(self.link.url)}"
                self.status.name = name
                self.clients.changed()

        self.push_screen(RenameScreen(self.model.name), renamed)

    def action_reconnect(self) -> None:
        self.activity.note("reconnecting now")
        if self.autoconnect and not any(worker.is_running for worker in self.workers if worker.group == "link"):
            self.run_link()
        else:
            self.link.reconnect_now()

    def run_link(self) -> Any:
        raise NotImplementedError  # the app's worker

    def action_clear_log(self) -> None:
        self.activity.clear_entries()

    async def action_quit(self) -> None:
        pending = self.model.pending
        if not pending:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "discard":
                pending.clear()
                pending.save()
                self.exit()
            elif choice == "keep":
                pending.save()
                self.exit()

        sent = sum(1 for add in pending if add.op not in self.link.unsent)
        self.push_screen(quit_with_pending(len(pending), sent), chosen)

    # -- panels, help ---------------------------------------------------------------

    def action_show(self, name: str) -> None:
        """Show a panel (on a small screen, instead of the one shown) and go to it."""
        for key, panel in self.panels.items():
            panel.set_class(key == name, "-chosen")
        target = self.clients if name == "people" else self.panels[name]
        target.focus()

    def help_sections(self) -> list[tuple[str, Sequence[BindingType]]]:
        return [
            ("Anywhere", self.BINDINGS),
            ("People (F3)", [*ClientsTable.BINDINGS, *PeoplePanel.BINDINGS]),
            ("History (F2)", HistoryChart.BINDINGS),
            ("Activity (F4)", ActivityLog.BINDINGS),
        ]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    # -- copy, screenshot, theme ---------------------------------------------------

    def action_copy_total(self) -> None:
        total = self.model.total
        if total is None:
            self.notify("No total yet: not connected.", title="Copy")
            return
        self.copy_to_clipboard(str(total))
        self.notify(f"{total:,}", title="Copied the total", markup=False)

    def action_copy_log(self) -> None:
        self.copy_to_clipboard(self.activity.selected_text())
        self.notify("Every line of the log the filter shows.", title="Copied the log")

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        # Textual saves to ~/Downloads, and fails where there is none: pick a directory that exists.
        return super().deliver_screenshot(filename, path or str(screenshot_directory()), time_format)

    def _theme_changed(self, theme: Any) -> None:
        if self.config is None:
            return
        try:
            save_value("theme", self.theme, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"could not save the theme in {self.config}: {exc}", severity="warning", markup=False)

    def set_log_filter(self, log_filter: LogFilter) -> None:
        self.activity.set_filter(log_filter)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Quit":  # ours asks first about pending adds, and says its key
                yield SystemCommand("Quit", "Quit; asks first if adds are still waiting (ctrl+q)", self.action_quit)
            elif command.title == "Screenshot":
                where = screenshot_directory()
                yield SystemCommand("Screenshot", f"Save an SVG of the screen in {where}", command.callback)
            else:
                yield command
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.tooltip and binding.action not in ("quit", "command_palette"):
                key = key_label(binding.key)
                yield SystemCommand(binding.description, f"{binding.tooltip} ({key})",
                                    partial(self.run_action, binding.action))  # fmt: skip
        for name, key in (("minute", "m"), ("hour", "h"), ("day", "d")):
            yield SystemCommand(
                f"History: last {name}", f"Chart the total over the last {name} (F2, then {key})",
                partial(self.chart.action_window, name),
            )  # fmt: skip
        for key, label in (("name", "n"), ("added", "a"), ("since", "s")):
            yield SystemCommand(
                f"People: sort by {key}", f"Sort the people by {key}; again to reverse (F3, then {label})",
                partial(self.clients.action_sort, key),  # type: ignore[arg-type]
            )  # fmt: skip
        yield SystemCommand("People: filter by name", "Show only names containing a text (F3, then f)",
                            self._filter_people)  # fmt: skip
        yield SystemCommand("People: copy the highlighted row", "Exactly, as on the detail line (F3, then c)",
                            self.people.action_copy_row)  # fmt: skip
        for log_filter, label in FILTERS.items():
            yield SystemCommand(
                f"Activity: show {label}", "Filter the activity log (F4, then f cycles)",
                partial(self.set_log_filter, log_filter),
            )  # fmt: skip
        yield SystemCommand("Activity: copy the lines in view", "(F4, then c)", self.activity.action_copy_lines)
        yield SystemCommand("Activity: copy the whole log", "Every line the filter shows", self.action_copy_log)

    def _filter_people(self) -> None:
        self.action_show("people")
        self.people.action_filter()
