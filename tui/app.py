"""The Tally app: one link to the server, one dashboard screen, and what is the app's own.

:func:`make_app` builds it, for the command line and for every test. The app
runs the link in a worker and hands each of its events to the dashboard
(:class:`LinkEvent` adapts the link's plain events to Textual's queue); it
keeps the theme, the screenshots, quitting, the adds left by earlier
dashboards and the question about adds typed for another ledger (their
journals). What the dashboard shows and does is :mod:`tui.screens.dashboard`'s;
its palette commands :mod:`tui.commands`'.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import platformdirs
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tally.tui import notes
from tally.tui.commands import DashboardCommands
from tally.tui.config import Preferences, save_value
from tally.tui.journal import Journal, fresh_in
from tally.tui.link import Link, LinkOptions
from tally.tui.messages import REPLACEABLE, Connected, Event, LedgerChanged
from tally.tui.model import Model
from tally.tui.pending import Pending
from tally.tui.screens.choice import ChoiceScreen, ledger_changed, quit_with_pending
from tally.tui.screens.dashboard import MIN_HEIGHT, MIN_WIDTH, Dashboard
from tally.tui.screens.help import HelpScreen, sections
from tally.tui.urls import public_url

__all__ = ["LinkEvent", "TallyApp", "make_app", "screenshot_directory"]


def screenshot_directory() -> Path:
    """Where screenshots go: the Downloads directory if there is one, else home, else here."""
    for candidate in (platformdirs.user_downloads_path(), Path.home(), Path.cwd()):
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    return Path.cwd()


class LinkEvent(Message):
    """One of the link's events, in Textual's queue: handled in the order posted."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # A newer event of a flooding kind (the latency, the pending count) makes this one moot.
        return (
            isinstance(self.event, REPLACEABLE)
            and isinstance(message, LinkEvent)
            and type(message.event) is type(self.event)
        )


class TallyApp(App[None]):
    TITLE = "Tally"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {DashboardCommands}
    # Breakpoints set these classes on every screen; app.tcss lays the panels out by them:
    # a grid from 80x24, a stack below (one panel at a time, F2-F4), a message below 32x12.
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny-width"), (MIN_WIDTH, "-narrow"), (80, "-wide"), (110, "-wider")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny-height"), (MIN_HEIGHT, "-short"), (24, "-tall")]
    # Every key works over any dialog too (ctrl+r under the ledger question reconnects); the
    # dashboard's are run on the dashboard (action_dashboard). The footer, the help and the palette read these.
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", key_display="?", tooltip="This help: the panels and every key"),
        Binding("f2", "dashboard('show', 'history')", "Chart", key_display="F2",
                tooltip="Show the history chart and go to it"),
        Binding("f3", "dashboard('show', 'people')", "People", key_display="F3",
                tooltip="Show the people and go to them"),
        Binding("f4", "dashboard('show', 'activity')", "Log", key_display="F4",
                tooltip="Show the activity log and go to it"),
        Binding("ctrl+z", "dashboard('undo')", "Undo", priority=True,
                tooltip="Take back your most recent add still in effect (again: the one before)"),
        Binding("ctrl+y", "dashboard('redo')", "Redo", priority=True, tooltip="Put back the add you undid last"),
        Binding("ctrl+n", "dashboard('rename')", "Rename", priority=True, tooltip="Change your display name"),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit (asks first if adds are still waiting)"),
        Binding("ctrl+p", "command_palette", "Commands", tooltip="Every command, with its key"),
        Binding("slash", "dashboard('search')", "Search", show=False, key_display="/",
                tooltip="Search the log: every match highlighted, n and N go from one to the next"),
        Binding("q", "quit", "Quit", show=False, tooltip="Quit, from anywhere but a text box"),
        Binding("ctrl+t", "dashboard('copy_total')", "Copy total", show=False, priority=True,
                tooltip="Copy the exact total"),
        Binding("ctrl+r", "dashboard('reconnect')", "Reconnect", show=False, priority=True,
                tooltip="Reconnect now (skip the wait)"),
        Binding("ctrl+l", "dashboard('clear_log')", "Clear log", show=False, priority=True,
                tooltip="Empty the activity log"),
    ]  # fmt: skip

    def __init__(
        self,
        options: LinkOptions,
        *,
        pending: Pending | None = None,
        leftovers: Sequence[Journal] = (),
        autoconnect: bool = True,
        preferences: Preferences | None = None,
        config: Path | None = None,
    ) -> None:
        """Build through :func:`make_app`."""
        super().__init__()
        self.autoconnect = autoconnect
        self.options = options
        self.link = Link(options, self.post_event, pending=pending)
        self.model = Model(options.name)
        self.dashboard = Dashboard(self.link, self.model, reconnect=self.reconnect)
        self.leftovers = list(leftovers)
        self.preferences = preferences or Preferences()
        self.config = config
        self._asking_about_ledger = False

    def get_default_screen(self) -> Screen[Any]:
        return self.dashboard

    def on_mount(self) -> None:
        theme = self.preferences.theme
        if theme is not None and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.preferences.problem:
            self.notify(self.preferences.problem, title="Preferences not read", severity="warning", markup=False)
        if self.autoconnect:
            self.run_link()
            for journal in self.leftovers:
                if Pending(journal):
                    self.send_leftovers(journal)
                else:
                    journal.remove()  # a session with nothing left to send

    def on_ready(self) -> None:
        # What exists once the first screen is drawn (the modules, the widgets, their styles) lives as long as the
        # app: left to the collector, each full collection walked all of it again (some 50 ms, every ten seconds
        # or so at 30 updates a second: about 7% of the dashboard's CPU). Thawed when the app stops (on_unmount),
        # so that a process that runs several apps (the tests) does not keep an earlier one's garbage.
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()

    # -- the link -------------------------------------------------------------------------

    def post_event(self, event: Event) -> None:
        """Where the link posts: each event joins the app's queue, to reach the dashboard in order."""
        self.post_message(LinkEvent(event))

    def on_link_event(self, message: LinkEvent) -> None:
        if isinstance(message.event, Connected) and self.options.start_server is None:
            # A server given by URL (not this user's own local one) answered: the next start goes there too.
            self.remember("url", ",".join(self.link.urls))
        if isinstance(message.event, LedgerChanged):
            self.ask_about_ledger(message.event)
        else:
            self.dashboard.heard(message.event)

    def ask_about_ledger(self, event: LedgerChanged) -> None:
        """The server holds another ledger than our pending adds': keep them aside (in a journal of their own), or
        discard them. Nothing was sent meanwhile."""
        if self._asking_about_ledger:
            return  # a reconnect while the question is open: it is still the same question
        self._asking_about_ledger = True
        activity = self.dashboard.activity

        def chosen(choice: str | None) -> None:
            self._asking_about_ledger = False
            if choice == "discard":
                self.link.discard_held()
                activity.note(f"discarded {event.pending} add(s) typed for ledger {event.expected}")
            else:
                journal = self.link.pending.journal
                old = self.link.keep_for_other_ledger(
                    Pending(None if journal is None else fresh_in(journal.path.parent))
                )
                if old.journal is not None:
                    old.journal.release()
                activity.note(f"kept {event.pending} add(s) for ledger {event.expected}; not sent here")
            self.dashboard.show_pending()

        activity.note(notes.ledger_held(event.found, event.expected, event.pending), style="bold red")
        self.push_screen(ledger_changed(public_url(self.link.url), event.expected, event.found, event.pending), chosen)

    @work(exclusive=True, exit_on_error=False, group="link")
    async def run_link(self) -> None:
        await self.link.run()

    def reconnect(self) -> None:
        """Start the link if it is not running (never started, or failed), else skip its wait."""
        if self.autoconnect and not any(worker.is_running for worker in self.workers if worker.group == "link"):
            self.run_link()
        else:
            self.link.reconnect_now()

    @work(exit_on_error=False, group="leftovers")
    async def send_leftovers(self, journal: Journal) -> None:
        """Send the adds a dashboard that quit or died left for this server, then remove its file."""
        options = dataclasses.replace(self.options, url=self.link.url, role="watcher", once=True, start_server=None)
        leftovers = Link(options, lambda event: None, pending=Pending(journal))
        count = len(leftovers.pending)
        await leftovers.run()
        count -= len(leftovers.pending)
        if leftovers.pending:
            journal.release()  # for another ledger, or the server refused us: kept for later
        else:
            journal.remove()
        if count:
            self.dashboard.activity.note(f"sent {count} add(s) left by an earlier dashboard", style="green")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The link never returns; if it fails, that is a bug, but the user must see
        # that the dashboard stopped following the server, and be able to restart it.
        if event.worker.group == "link" and event.state == WorkerState.ERROR:
            reason = f"the connection stopped unexpectedly: {event.worker.error!r}"
            self.dashboard.stopped(reason)
            self.notify(reason, title="Offline", severity="error", markup=False)

    # -- the app's own actions --------------------------------------------------------------

    def action_dashboard(self, action: str, *arguments: str) -> None:
        """Run the dashboard's ``action_<action>``: its keys are bound here, to work over any dialog."""
        getattr(self.dashboard, f"action_{action}")(*arguments)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(sections([*self.BINDINGS, *Dashboard.BINDINGS])))  # Esc too

    async def action_quit(self) -> None:
        outbox = self.link.outbox
        if not outbox.pending:
            self.exit()
            return
        if isinstance(self.screen, ChoiceScreen):
            return  # q in the question itself: it is being asked

        def chosen(choice: str | None) -> None:
            if choice == "discard":
                outbox.discard()
                self.exit()
            elif choice == "keep":
                outbox.save()
                count = len(outbox.pending)
                self.exit(message=f"tally: {count:,} add{'s' * (count != 1)} kept: the next dashboard you open "
                                  f"for {public_url(self.link.url)} sends {'them' if count != 1 else 'it'}, "
                                  "counted once")  # fmt: skip

        self.push_screen(quit_with_pending(len(outbox.pending), outbox.may_have_counted), chosen)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        # Textual saves to ~/Downloads, and fails where there is none: pick a directory that exists.
        return super().deliver_screenshot(filename, path or str(screenshot_directory()), time_format)

    def _theme_changed(self, theme: Any) -> None:
        self.remember("theme", self.theme)

    @on(Dashboard.Renamed)  # by its class: the handler's name would follow the module that defines it
    def name_chosen(self, message: Dashboard.Renamed) -> None:
        self.remember("name", message.name)

    def remember(self, key: str, value: str) -> None:
        """Save a preference in config.toml (nothing without one: tests), if it changed; say so if it cannot be."""
        if self.config is None or getattr(self.preferences, key) == value:
            return
        try:
            save_value(key, value, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"could not save the {key} in {self.config}: {exc}", severity="warning", markup=False)
            return
        self.preferences = dataclasses.replace(self.preferences, **{key: value})

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Quit":  # ours asks first about pending adds, and says its key
                yield SystemCommand("Quit", "Quit; asks first if adds are still waiting (ctrl+q)", self.action_quit)
            elif command.title == "Screenshot":
                where = screenshot_directory()
                yield SystemCommand("Screenshot", f"Save an SVG of the screen in {where}", command.callback)
            else:
                yield command


def make_app(
    options: LinkOptions,
    *,
    pending: Pending | None = None,
    leftovers: Sequence[Journal] = (),
    autoconnect: bool = True,
    preferences: Preferences | None = None,
    config: Path | None = None,
) -> TallyApp:
    """The dashboard for ``options``: the one way to build it, for the command line and the tests.

    ``pending`` (kept on disk) and ``leftovers`` (journals of dashboards that quit
    or died) come from the command line. ``autoconnect=False`` leaves the link
    unstarted (snapshot tests feed its events instead). ``preferences`` were read
    from ``config``, where a theme chosen in the app is saved (nothing is saved without it).
    """
    return TallyApp(
        options, pending=pending, leftovers=leftovers, autoconnect=autoconnect, preferences=preferences, config=config
    )
