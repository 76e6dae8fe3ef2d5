"""Widgets of the dashboard: each renders what the app gives it."""

from tally.tui.widgets.activity import ActivityLog
from tally.tui.widgets.amount import AmountEntry, AmountInput
from tally.tui.widgets.clients import ClientsTable
from tally.tui.widgets.history import HistoryChart
from tally.tui.widgets.keys import KeyBar
from tally.tui.widgets.people import PeoplePanel
from tally.tui.widgets.status import StatusBar
from tally.tui.widgets.total import TotalPanel

__all__ = [
    "ActivityLog",
    "AmountEntry",
    "AmountInput",
    "ClientsTable",
    "HistoryChart",
    "KeyBar",
    "PeoplePanel",
    "StatusBar",
    "TotalPanel",
]
