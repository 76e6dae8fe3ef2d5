"""What the activity log says about the connection, the ledger and the store, in words people read.

Pure (no Textual, no clock): the dashboard passes what happened, these say it, so that
the wording is tested without a screen. Everything from the network goes through
:func:`tui.text.plain_text` first.
"""

from __future__ import annotations

import time

from tally.server.protocol import StoreStatus, Update, Welcome
from tally.tui.text import duration, plain_text
from tally.tui.undo import Mine

__all__ = ["carried_on", "ledger_held", "ledger_replaced", "store_away", "store_back", "took_back", "waiting_go", "who"]


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


def _which(mine: Mine) -> str:
    """Which update an add of mine is: its seq, or when it was typed if the server has not counted it yet."""
    if mine.seq is not None:
        return f"update {mine.seq:,}"
    return f"typed at {time.strftime('%H:%M:%S', time.localtime(mine.typed_at))}, not counted yet"


def took_back(taken: Mine, sent: Mine, original: Mine | None) -> str:
    """What a press of ctrl+z (``sent`` is an undo) or ctrl+y (a redo) did: which update it took back."""
    if sent.kind == "undo":
        return f"undoing your {taken.amount:+,} ({_which(taken)}): {sent.amount:+,} goes now"
    redone = f"{-taken.amount:+,}"
    before = f" ({_which(original)})" if original is not None else ""
    return f"redoing your {redone}{before}: undoing its undo ({_which(taken)})"


def who(update: Update, you: str | None, *, tagged: bool) -> str:
    """Who made ``update``, in a few words: "you", "bob", or "bob#b2c3" when two people go by that name."""
    if update.client == you:
        return "you"
    return plain_text(update.name, limit=20) + (f"#{plain_text(update.tag, limit=8)}" if tagged and update.tag else "")
