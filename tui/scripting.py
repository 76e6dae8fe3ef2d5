"""``tally add``, ``tally watch`` and ``tally status``: the same connection as the dashboard, for scripts.

Each command is a watcher (it is not listed among the people online), speaks
through :class:`~tui.link.Link` like the dashboard (so an add is resent
with the same op id after a reconnect, and counts once), prints plain lines or
JSON, and ends with an exit status a script can act on (see ``EXIT``).
Nothing here loads Textual: the link's events are plain dataclasses.

An add goes in this user's script session (:mod:`tui.script_session`) under
an op id the script chose (``--op-id``) or a random one, and is pending before
the link starts, so the first welcome sends it, as it sends the adds a
dashboard left on disk. A run that ends without an answer says whether the add
may have reached the server and, if it may, how to retry it safely: the same
op id in the same session is answered with the original ack, never added twice.

While nothing answers, each command says so on stderr, once per wait (:class:`Waiting`):
a script is never silent for its whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TextIO

from tally.server.protocol import Update, Welcome
from tally.tui.link import Link, LinkOptions
from tally.tui.messages import AddAcknowledged, Connected, ConnectionLost, Event, GaveUp, ServerRefused, UpdatesArrived
from tally.tui.pending import Pending
from tally.tui.retry import NOT_LISTENING
from tally.tui.script_session import ScriptSessionError, script_secret
from tally.tui.text import plain_text

__all__ = ["EXIT", "Waiting", "add", "status", "watch"]

# Exit statuses: what a script can act on (also in `tally --help`). A signal ends a command with 128 + its number.
EXIT = {
    "done": 0,
    "failed": 1,  # this machine could not run it: the local server would not start, the state directory…
    "usage": 2,
    "refused": 3,  # the server refused the add for good: invalid amount, overflow, conflict…
    "unreachable": 4,  # no server, or no answer in time: an add may or may not have counted (retry with --op-id)
    "denied": 5,  # the token is wrong or missing, or the server's certificate is not trusted
}
# Refusals that say "not now": the link resends by itself.
TRANSIENT = ("unavailable", "rate_limited")


def _denied(reason: str) -> bool:
    return "token" in reason or "certificate" in reason or "403" in reason


class Waiting:
    """Says on stderr, once per wait, what a command waits for; with ``fail_fast``, when to stop waiting.

    A wait starts when every URL has failed once since the last welcome (a server
    just started for us, or a reconnect at once after a session, is not one). With
    ``fail_fast``, a round in which nothing listened at any URL ends it: ``hopeless``.
    """

    def __init__(
        self, urls: Sequence[str], *, within: float | None, fail_fast: bool = False, err: TextIO = sys.stderr
    ) -> None:
        self.urls = list(urls)
        self.within = within
        self.fail_fast = fail_fast
        self.err = err
        self.said = False  # the current wait was announced
        self.welcomed = False  # a server has welcomed us (the add may have gone out since)
        self.refused = 0  # attempts in a row that found nothing listening
        self.hopeless: str | None = None

    @property
    def where(self) -> str:
        return " or ".join(self.urls)

    def post(self, message: Event) -> bool:
        """Take one of the link's events; True when it ends a wait that was announced."""
        if isinstance(message, Connected):
            ended, self.said, self.refused, self.welcomed = self.said, False, 0, True
            return ended
        if not isinstance(message, ConnectionLost) or message.attempt == 0:
            return False
        self.refused = self.refused + 1 if message.reason == NOT_LISTENING else 0
        if self.fail_fast and self.refused >= len(self.urls):
            self.hopeless = f"no server at {self.where}{' any more' if self.welcomed else ''} (--fail-fast)"
        elif not self.said and message.attempt >= len(self.urls):
            self.said = True
            print(f"tally: {self._what(message.reason)}; ctrl+c stops", file=self.err, flush=True)
        return False

    def _what(self, reason: str) -> str:
        how_long = f" for up to {self.within:g} s" if self.within is not None else ""
        if reason == NOT_LISTENING and not self.welcomed:
            return f"no server at {self.where} yet, retrying{how_long}"
        return f"{self.where}: {reason}, retrying{how_long}"


class Outcome:
    """What the link told a script, message by message."""

    def __init__(self, waiting: Waiting) -> None:
        self.waiting = waiting
        self.welcome: Welcome | None = None
        self.total: int | None = None  # the latest total known
        self.updates: dict[int, Update] = {}
        self.acked: int | None = None
        self.refused: str | None = None
        self.gave_up: str | None = None
        self.trouble = ""  # why the last attempt to connect failed, if one did
        self.stopped = 0  # the signal that stopped us, if one did
        self.done = asyncio.Event()

    def post(self, message: Event) -> None:
        self.waiting.post(message)
        if isinstance(message, Connected):
            self.welcome = message.welcome
            self.total = message.welcome.total
        elif isinstance(message, UpdatesArrived):
            self.updates.update((u.seq, u) for u in message.updates)
            self.total = message.updates[-1].total
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
            if self.waiting.hopeless is not None:
                self.done.set()

    def stop(self, signum: int) -> None:
        self.stopped = signum
        self.done.set()

    def unanswered(self, within: float) -> str:
        """Why no answer came: a signal, --fail-fast, or the timeout."""
        if self.stopped:
            return "stopped"
        if self.waiting.hopeless is not None:
            return self.waiting.hopeless
        return f"no answer within {within:g} s" + (f" ({self.trouble})" if self.trouble else "")

    def exit_status(self) -> int:
        """For a run that got no answer: 128 + the signal that stopped it, else 4."""
        return 128 + self.stopped if self.stopped else EXIT["unreachable"]


async def _run(link: Link, outcome: Outcome, within: float | None) -> bool:
    """Run ``link`` until ``outcome`` is done (or SIGINT, SIGTERM), for at most ``within`` seconds; True if done."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, outcome.stop, signum)
    runner = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(within):
            await outcome.done.wait()
        return not outcome.stopped and outcome.waiting.hopeless is None
    except TimeoutError:
        return False
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def _watcher(options: LinkOptions, name: str | None = None) -> LinkOptions:
    """A script's link: a watcher, not listed among the people online."""
    return replace(options, role="watcher", name=options.name if name is None else name)


def new_op_id() -> str:
    """An op id for an add whose script chose none: unique without any record of the ones used."""
    return secrets.token_hex(8)


async def add(
    amount: int,
    options: LinkOptions,
    *,
    within: float,
    op: str | None = None,
    fail_fast: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Add ``amount`` as ``op`` (default: a new op id); print the total it made. Exit status from ``EXIT``."""
    pending = Pending()
    try:
        pending.secret = script_secret(options.urls)
    except ScriptSessionError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return EXIT["failed"]
    given, op = op is not None, op or new_op_id()
    pending.add(amount, op=op)
    outcome = Outcome(Waiting(options.urls, within=within, fail_fast=fail_fast))
    link = Link(_watcher(options), outcome.post, pending=pending)
    if not await _run(link, outcome, within):
        if outcome.welcome is None:  # adds go out only after a welcome
            said = "nothing was sent, nothing was added"
        else:
            retry = "with the same --op-id" if given else f"with --op-id {op}"
            said = f"the add may or may not have counted; the same command {retry} adds it only if it did not"
        print(f"tally: {outcome.unanswered(within)}: {said}", file=sys.stderr)
        return outcome.exit_status()
    if outcome.gave_up is not None:
        print(f"tally: {outcome.gave_up}", file=sys.stderr)
        return EXIT["denied"] if _denied(outcome.gave_up) else EXIT["unreachable"]
    if outcome.refused is not None:
        print(f"tally: refused: {outcome.refused}", file=sys.stderr)
        return EXIT["refused"]
    assert outcome.acked is not None
    update = outcome.updates.get(outcome.acked)
    if update is None:  # a retry of an add already counted: its update went out before this connection
        earlier = {u.seq: u for u in outcome.welcome.recent} if outcome.welcome else {}
        update = earlier.get(outcome.acked)
        print(f"tally: op {op} was already counted, as update {outcome.acked}; not added again", file=sys.stderr)
    print(update.total if update is not None else outcome.total, file=out)
    return EXIT["done"]


async def status(
    options: LinkOptions, *, as_json: bool, within: float, fail_fast: bool = False, out: TextIO = sys.stdout
) -> int:
    """Print the total, the seq, who is online and the server's version."""
    outcome = Outcome(Waiting(options.urls, within=within, fail_fast=fail_fast))

    def post(message: Event) -> None:
        outcome.post(message)
        if isinstance(message, Connected):
            outcome.done.set()

    link = Link(_watcher(options, "status"), post)
    if not await _run(link, outcome, within) or outcome.welcome is None:
        print(f"tally: {outcome.gave_up or outcome.unanswered(within)}", file=sys.stderr)
        return EXIT["denied"] if outcome.gave_up and _denied(outcome.gave_up) else outcome.exit_status()
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


async def watch(options: LinkOptions, *, as_json: bool, fail_fast: bool = False, out: TextIO = sys.stdout) -> int:
    """Print one line per update until SIGINT, SIGTERM or a closed pipe."""
    stop = asyncio.Event()
    failure: list[int] = []
    shown = 0  # the last seq printed: nothing twice, nothing missed across reconnects
    render: Callable[[Update], str] = update_json if as_json else update_line
    waiting = Waiting(options.urls, within=None, fail_fast=fail_fast)

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
        if waiting.post(message):
            print(f"tally: connected to {link.url}", file=sys.stderr, flush=True)
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
            give_up(message.reason)
        elif waiting.hopeless is not None:
            give_up(waiting.hopeless)

    def give_up(reason: str) -> None:
        if not stop.is_set():
            print(f"tally: {reason}", file=sys.stderr)
            failure.append(EXIT["denied"] if _denied(reason) else EXIT["unreachable"])
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
