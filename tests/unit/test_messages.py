"""The link's events: plain dataclasses, and the app's wrapper that lets a flood collapse to its latest."""

from __future__ import annotations

import dataclasses

from tally.server.protocol import Update
from tally.tui.app import LinkEvent
from tally.tui.messages import LatencyMeasured, PendingChanged, UpdatesArrived


def test_a_newer_latency_or_pending_count_replaces_the_one_waiting() -> None:
    """Runs of LatencyMeasured or PendingChanged collapse; other events, and different kinds, never do."""
    assert LinkEvent(LatencyMeasured(0.1)).can_replace(LinkEvent(LatencyMeasured(0.2)))
    assert LinkEvent(PendingChanged()).can_replace(LinkEvent(PendingChanged()))
    assert not LinkEvent(LatencyMeasured(0.1)).can_replace(LinkEvent(PendingChanged()))
    update = Update(seq=1, total=1, amount=1, name="bob", client="c1", op=None, at=0.0)
    updates = LinkEvent(UpdatesArrived([update]))
    assert not updates.can_replace(LinkEvent(UpdatesArrived([update]))), "every update must be shown"


def test_the_events_are_plain_dataclasses() -> None:
    """No Textual in them: a script's outcome takes them as they are."""
    assert dataclasses.is_dataclass(LatencyMeasured) and LatencyMeasured.__mro__[1] is object
