"""Widgets of the dashboard: each renders what the app gives it."""

from tui.widgets.activity import ActivityLog
from tui.widgets.amount import AmountEntry, AmountInput
from tui.widgets.clients import ClientsTable
from tui.widgets.history import HistoryChart
from tui.widgets.people import PeoplePanel
from tui.widgets.status import StatusBar
from tui.widgets.total import TotalPanel

__all__ = [
    "ActivityLog",
    "AmountEntry",
    "AmountInput",
    "ClientsTable",
    "HistoryChart",
    "PeoplePanel",
    "StatusBar",
    "TotalPanel",
]
