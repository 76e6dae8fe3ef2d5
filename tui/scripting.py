"""``tally add``, ``tally watch`` and ``tally status``: the same connection as the dashboard, for scripts.

Each command is a watcher (it is not listed among the people online), speaks
through :class:`~tui.link.Link` like the dashboard (so an add is resent
with the same op id after a reconnect, and counts once), prints plain lines or
JSON, and ends with an exit status a script can act on (see ``EXIT``).
Nothing here loads Textual: the link's events are plain dataclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from tally.server.protocol import Update, Welcome
from tally.tui.link import Link, LinkOptions
from tally.tui.messages import AddAcknowledged, Connected, ConnectionLost, Event, GaveUp, ServerRefused, UpdatesArrived
from tally.tui.text import plain_text

__all__ = ["EXIT", "add", "status", "watch"]

# Exit statuses: what a script can act on (also in `tally --help`).
EXIT = {
    "done": 0,
    "usage": 2,
    "refused": 3,  # the server refused the add for good: invalid amount, overflow, conflict…
    "unreachable": 4,  # no answer in time: the add may or may not have counted (resending is safe only by hand)
    "denied": 5,  # the token is wrong or missing, or the server's certificate is not trusted
}
# Refusals that say "not now": the link resends by itself.
TRANSIENT = ("unavailable", "rate_limited")


def _denied(reason: str) -> bool:
    return "token" in reason or "certificate" in reason or "403" in reason


class Outcome:
    """What the link told a script, message by message."""

    def __init__(self) -> None:
        self.welcome: Welcome | None = None
        self.updates: dict[int, Update] = {}
        self.acked: int | None = None
        self.refused: str | None = None
        self.gave_up: str | None = None
        self.trouble = ""  # why the last attempt to connect failed, if one did
        self.done = asyncio.Event()

    def post(self, message: Event) -> None:
        if isinstance(message, Connected):
            self.welcome = message.welcome
        elif isinstance(message, UpdatesArrived):
            self.updates.update((u.seq, u) for u in message.updates)
        elif isinstance(message, AddAcknowledged):
            self.acked = message.seq
            self.done.set()
        elif isinstance(message, ServerRefused) and message.add is not None and message.error.code not in TRANSIENT:
            self.refused = f"{message.error.code}: {message.error.message}"
            self.done.set()
        elif isinstance(message, GaveUp):
            self.gave_up = message.reason
            self.done.set()
        elif isinstance(message, ConnectionLost):
            self.trouble = message.reason


async def _run(link: Link, outcome: Outcome, within: float) -> bool:
    """Run ``link`` until ``outcome`` is done, for at most ``within`` seconds; True if done."""
    runner = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(within):
            await outcome.done.wait()
        return True
    except TimeoutError:
        return False
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def _watcher(options: LinkOptions, name: str | None = None) -> LinkOptions:
    """A script's link: a watcher, not listed among the people online."""
    return replace(options, role="watcher", name=options.name if name is None else name)


async def add(amount: int, options: LinkOptions, *, within: float, out: TextIO = sys.stdout) -> int:
    """Add ``amount``; print the total it made. Exit status from ``EXIT``."""
    outcome = Outcome()
    link = Link(_watcher(options), outcome.post)
    link.add(amount)
    if not await _run(link, outcome, within):
        why = f" ({outcome.trouble})" if outcome.trouble else ""
        print(f"tally: no answer within {within:g} s{why}: the add may or may not have counted", file=sys.stderr)
        return EXIT["unreachable"]
    if outcome.gave_up is not None:
        print(f"tally: {outcome.gave_up}", file=sys.stderr)
        return EXIT["denied"] if _denied(outcome.gave_up) else EXIT["unreachable"]
    if outcome.refused is not None:
        print(f"tally: refused: {outcome.refused}", file=sys.stderr)
        return EXIT["refused"]
    assert outcome.acked is not None
    update = outcome.updates.get(outcome.acked)
    if update is not None:
        print(update.total, file=out)
    else:  # a resend of an add already counted: its update went out before we were here
        print(
            f"{outcome.welcome.total if outcome.welcome else '?'} (already counted, update {outcome.acked})", file=out
        )
    return EXIT["done"]


async def status(options: LinkOptions, *, as_json: bool, within: float, out: TextIO = sys.stdout) -> int:
    """Print the total, the seq, who is online and the server's version."""
    outcome = Outcome()

    def post(message: Event) -> None:
        outcome.post(message)
        if isinstance(message, Connected):
            outcome.done.set()

    link = Link(_watcher(options, "status"), post)
    if not await _run(link, outcome, within) or outcome.welcome is None:
        reason = outcome.gave_up or f"no answer within {within:g} s" + (
            f" ({outcome.trouble})" if outcome.trouble else ""
        )
        print(f"tally: {reason}", file=sys.stderr)
        return EXIT["denied"] if outcome.gave_up and _denied(outcome.gave_up) else EXIT["unreachable"]
    welcome = outcome.welcome
    facts = {
        "total": welcome.total,
        "seq": welcome.seq,
        "online": welcome.online,
        "ledger": welcome.ledger,
        "epoch": welcome.epoch,
        "server": welcome.server.version,
        "url": link.url,
    }
    if as_json:
        print(json.dumps(facts), file=out)
    else:
        print(
            f"total {welcome.total:,} after {welcome.seq:,} updates · {welcome.online:,} online · "
            f"server {welcome.server.version or '?'} · ledger {welcome.ledger} (epoch {welcome.epoch})",
            file=out,
        )
    return EXIT["done"]


def update_json(update: Update) -> str:
    return json.dumps(
        {"seq": update.seq, "total": update.total, "amount": update.amount, "name": update.name, "at": update.at,
         "client": update.client, "op": update.op, "undoes": update.undoes},
        ensure_ascii=False,
    )  # fmt: skip


def update_line(update: Update) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(update.at))
    verb = f"undid update {update.undoes} with" if update.undoes is not None else "added"
    return f"{when} {plain_text(update.name, limit=40)} {verb} {update.amount:+,} → {update.total:,}"


async def watch(options: LinkOptions, *, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print one line per update until SIGINT, SIGTERM or a closed pipe."""
    stop = asyncio.Event()
    failure: list[int] = []
    shown = 0  # the last seq printed: nothing twice, nothing missed across reconnects
    render: Callable[[Update], str] = update_json if as_json else update_line

    def show(updates: tuple[Update, ...] | list[Update]) -> None:
        nonlocal shown
        try:
            for update in updates:
                if update.seq > shown:
                    out.write(render(update) + "\n")
                    shown = update.seq
            out.flush()
        except BrokenPipeError:
            stop.set()  # `tally watch | head`: the reader is done, so are we

    def post(message: Event) -> None:
        nonlocal shown
        if isinstance(message, Connected):
            welcome = message.welcome
            if welcome.missed is not None:
                show(welcome.missed)
            elif shown and welcome.seq > shown:
                print(f"tally: updates {shown + 1}..{welcome.seq} are no longer kept; going on", file=sys.stderr)
            shown = max(shown, welcome.seq)
        elif isinstance(message, UpdatesArrived):
            show(message.updates)
        elif isinstance(message, GaveUp):
            print(f"tally: {message.reason}", file=sys.stderr)
            failure.append(EXIT["denied"] if _denied(message.reason) else EXIT["unreachable"])
            stop.set()

    link = Link(_watcher(options, "watch"), post)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(link.run())
    try:
        await stop.wait()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    with contextlib.suppress(BrokenPipeError):
        out.flush()
    return failure[0] if failure else EXIT["done"]
