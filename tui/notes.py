"""What the activity log says about the connection, the ledger and the store, in words people read.

Pure (no Textual, no clock): the dashboard passes what happened, these say it, so that
the wording is tested without a screen. Everything from the network goes through
:func:`tui.text.plain_text` first.
"""

from __future__ import annotations

from tally.server.protocol import StoreStatus, Welcome
from tally.tui.text import duration, plain_text

__all__ = ["carried_on", "ledger_held", "ledger_replaced", "store_away", "store_back", "waiting_go"]


def waiting_go(waiting: int) -> str:
    """ "; your 3 waiting adds go now" (nothing if none waits)."""
    if not waiting:
        return ""
    return f"; your {waiting:,} waiting add{'s go' if waiting != 1 else ' goes'} now"


def ledger_replaced(url: str, welcome: Welcome, was: int | None) -> str:
    was_text = "?" if was is None else f"{was:,}"
    return f"{url} now holds a different ledger ({welcome.ledger}, total {welcome.total:,}; it was {was_text})"


def ledger_held(found: str, expected: str, pending: int) -> str:
    return f"this server holds ledger {found}; {pending} pending add(s) were typed for {expected} and were not sent"


def carried_on(welcome: Welcome, waiting: int) -> str:
    """The ledger carries on in a new epoch (its store lost history, and it was repaired): one line says it all."""
    return (
        f"the store had lost history: the ledger carries on in epoch {welcome.epoch:,}, total {welcome.total:,} "
        f"after update {welcome.seq:,}, shown afresh" + waiting_go(waiting)
    )


def store_away(status: StoreStatus) -> str:
    """The store went away (``unavailable``) or lost history (``rewound``): what happened, and what happens now."""
    reason = plain_text(status.reason or "no reason given", limit=300)
    if status.state == "rewound":
        return (
            f"the store lost updates the server had acknowledged ({reason}); adds wait until it is repaired "
            "(servers on a shared store do it by themselves), then go by themselves, each counted once"
        )
    return f"the store is away ({reason}): adds wait, and go by themselves when it is back"


def store_back(seconds: float, waiting: int) -> str:
    return f"the store is back after {duration(seconds)}{waiting_go(waiting)}"
