"""Pending adds across crashes, quits and servers, with real processes: each add counts once, and only where typed.

Every dashboard runs at 80x24, the size the layout promises to fit. That the
dialogs' every word can be read at that size is checked with the pilot
(tests/tui/test_dialogs.py): a real terminal adds nothing there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

from tally.server.protocol import Presence
from tally.tui.journal import journals_for
from tests.e2e.conftest import StartTally
from tests.support import waiting
from tests.support.local import journal_adds, journals
from tests.support.peers import Peer
from tests.support.servers import ServerProcess
from tests.support.terminal import Terminal, until_shown

QUIT_BUTTONS = ("Wait", "Keep: quit, send them next time", "Discard and quit")


async def ledger_state(url: str) -> tuple[int, int]:
    """The server's total and seq, as a new client is told them."""
    async with await Peer.join(url, "auditor") as peer:
        assert peer.welcome is not None
        return peer.welcome.total, peer.welcome.seq


async def until_total(url: str, total: int, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (state := await ledger_state(url))[0] != total:
        assert loop.time() < deadline, f"the total is still {state[0]} after {timeout:g} s, not {total}"
        await asyncio.sleep(0.05)


async def connected(start_tally: StartTally, url: str, name: str) -> Terminal:
    terminal = start_tally("--url", url, "--no-spawn", "--name", name)
    await until_shown(terminal, "● connected")
    return terminal


async def sent_once_by_a_new_dashboard(
    start_tally: StartTally, url: str, env: dict[str, str], total: int, *, shown: tuple[str, ...] = ()
) -> Terminal:
    """A new dashboard for ``url`` sends what was left: the total becomes ``total`` and stays; nothing is left.

    ``shown``: what the dashboard must have said before it is asked to quit.
    """
    before = await ledger_state(url)
    added = total - before[0]
    terminal = await connected(start_tally, url, "next")
    await until_total(url, total)
    await waiting.until(lambda: "pending" not in terminal.text(), what=f"no pending add; {terminal.describe()}")
    if shown:
        await until_shown(terminal, *shown)
    terminal.type("\x11")  # nothing pending: it quits at once
    assert await asyncio.to_thread(terminal.wait, 10) == 0, terminal.describe()
    assert journal_adds(env) == [], journals(env)
    # Each add once: the total, and one update per add (no add applied twice, even as a zero).
    state = await ledger_state(url)
    assert state[0] == total
    assert added == 0 or state[1] > before[1]
    return terminal


async def kill_server_and_type(server: ServerProcess, terminal: Terminal, lines: list[str]) -> None:
    server.kill()
    await until_shown(terminal, "no server is listening")
    terminal.type("".join(f"{line}\r" for line in lines))
    await until_shown(terminal, f"{len(lines)} pending")


async def test_adds_typed_while_the_server_is_down_survive_kill_9(
    tmp_path: Path, user: dict[str, str], start_tally: StartTally
) -> None:
    """Adds typed while the server is down are on disk at once, so after kill -9 the next dashboard sends each once."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        first = await connected(start_tally, url, "ann")
        await kill_server_and_type(server, first, ["3", "4", "5"])
        await waiting.until(lambda: sorted(journal_adds(user)) == [3, 4, 5], timeout=3, what="the adds on disk")
        first.kill()
        server.start()
        await sent_once_by_a_new_dashboard(start_tally, url, user, total=12)
        assert await ledger_state(url) == (12, 3)


async def test_dashboards_killed_before_their_adds_are_answered_leave_them_to_the_next(
    tmp_path: Path, user: dict[str, str], start_tally: StartTally
) -> None:
    """Two dashboards kill -9'd while a hung server holds their adds: the next adopts one journal, sends the other."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        ann = await connected(start_tally, url, "ann")
        bob = await connected(start_tally, url, "bob")
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # hung: connections stay open, nothing is answered
        try:
            ann.type("3\r4\r5\r")
            bob.type("100\r")
            # Each add is on disk before it is sent.
            await waiting.until(lambda: sorted(journal_adds(user)) == [3, 4, 5, 100], what="the adds on disk")
            assert len(journals(user)) == 2
            ann.kill()
            bob.kill()
        finally:
            server.kill()  # SIGKILL ends a stopped process too; what it had not read is gone
        server.start()
        assert await ledger_state(url) == (0, 0)
        # What one journal held is sent as its own session, the other's in the background, said in the log.
        shown = ("add(s) left by an earlier",)  # the rest may wrap
        await sent_once_by_a_new_dashboard(start_tally, url, user, total=112, shown=shown)
        assert await ledger_state(url) == (112, 4)


async def test_quit_and_send_them_next_time(tmp_path: Path, user: dict[str, str], start_tally: StartTally) -> None:
    """Ctrl+Q with adds pending asks; Escape waits; "Keep: quit, send them next time" keeps them for the next
    dashboard."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        first = await connected(start_tally, url, "ann")
        await kill_server_and_type(server, first, ["3", "4", "5"])

        first.type("\x11")
        await until_shown(first, "Adds still waiting", *QUIT_BUTTONS)
        first.type("\x1b")  # Escape: Wait
        await waiting.until(lambda: not first.shows("Adds still waiting"), what="the dialog to close")
        await until_shown(first, "3 pending")
        assert first.alive()

        first.type("\x11")
        await until_shown(first, "Adds still waiting", *QUIT_BUTTONS)
        first.type("\t\r")  # from Wait (focused) to the next button, and press it
        assert await asyncio.to_thread(first.wait, 10) == 0, first.describe()
        assert sorted(journal_adds(user)) == [3, 4, 5]

        server.start()
        await sent_once_by_a_new_dashboard(start_tally, url, user, total=12)
        assert await ledger_state(url) == (12, 3)


def pruned_since(db: Path) -> float:
    """When the server last forgot op ids (Unix time), read from its database."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = 'pruned'").fetchone()
    return float(row[0]) if row is not None else float("-inf")


async def test_an_acknowledged_add_is_never_sent_again(
    tmp_path: Path, user: dict[str, str], start_tally: StartTally
) -> None:
    """An add the server acknowledged leaves the journal, so a dashboard killed after it never causes a second count."""
    db = tmp_path / "tally.db"
    with ServerProcess(db, "--retention", "1") as server:  # op ids kept 1 s: the 24 h default, shortened
        url = server.start()
        first = await connected(start_tally, url, "ann")
        first.type("5\r")
        await until_total(url, 5)
        # The ack reaches the dashboard, and the journal is rewritten without the add.
        await waiting.until(lambda: not journal_adds(user), what=f"the journal emptied; {first.describe()}")
        acked_at = time.time()
        on_disk = journal_adds(user)  # the evidence, shown in the failure below
        first.kill()
        server.kill()
        await waiting.until(lambda: time.time() > acked_at + 1.5, what="the retention to pass")
        server.start()
        await waiting.until(lambda: pruned_since(db) > acked_at, what="the server to forget old op ids")
        second = await connected(start_tally, url, "next")
        await waiting.until(lambda: "pending" not in second.text(), what="no pending add")
        assert await ledger_state(url) == (5, 1), f"journal after the ack: {on_disk}"


async def ledger_dialog(url: str, start_tally: StartTally) -> tuple[Terminal, str]:
    """A dashboard that finds an add left for another ledger, and what its dialog must say."""
    journal, _ = journals_for(url)  # as a dashboard for that ledger would have left it
    add = {"op": "1", "amount": 2, "typed_at": time.time(), "text": "2", "undo": None}
    journal.write({"secret": "s" * 32, "ledger": "0123456789abcdef", "next_op": 2, "adds": [add]})
    journal.release()
    async with await Peer.join(url, "auditor") as peer:
        assert peer.welcome is not None
        found = peer.welcome.ledger
    terminal = start_tally("--url", url, "--no-spawn", "--name", "ann")
    await until_shown(terminal, "This is a different ledger", "Keep them for that ledger", "Discard them")
    assert await ledger_state(url) == (0, 0)  # held, not sent
    return terminal, (
        f"The server at {url} now holds ledger {found}, not 0123456789abcdef, the one your 1 pending add was typed "
        "for. Nothing was sent to it. Keep them for when that ledger is back, or discard them?"
    )


async def test_adds_are_held_from_a_different_ledger_on_the_same_port(
    tmp_path: Path, user: dict[str, str], start_tally: StartTally
) -> None:
    """Adds pending for one ledger are not applied to another served at the same address, and the screen says why."""
    with ServerProcess(tmp_path / "first.db") as first:
        url = first.start()
        terminal = await connected(start_tally, url, "ann")
        terminal.type("1\r")
        await until_total(url, 1)
        await kill_server_and_type(first, terminal, ["2", "3"])

        with ServerProcess(tmp_path / "other.db") as other:  # another ledger, at the same address
            other.port = first.port
            other.start()
            assert await ledger_state(url) == (0, 0)
            # The dashboard reconnects by itself, after a backoff of a few seconds at most.
            dialog = ("This is a different ledger", "Keep them for that ledger", "Discard them")
            await until_shown(terminal, *dialog, timeout=20)
            assert await ledger_state(url) == (0, 0), "adds typed for the first ledger reached the other"

            terminal.type("\x1b")  # Escape: keep them for their own ledger
            await waiting.until(lambda: not terminal.shows("This is a different ledger"), what="the dialog to close")
            await until_shown(terminal, "● connected", "kept 2 add(s) for")
            assert await ledger_state(url) == (0, 0)
            terminal.type("7\r")  # the dashboard now serves this ledger
            await until_total(url, 7)
            terminal.type("\x11")
            assert await asyncio.to_thread(terminal.wait, 10) == 0, terminal.describe()
            assert await ledger_state(url) == (7, 1)
            assert sorted(journal_adds(user)) == [2, 3]

        # The first ledger is back: a new dashboard sends the kept adds to it, once.
        first.start()
        shown = ("sent 2 add(s) left by an earlier",)
        await sent_once_by_a_new_dashboard(start_tally, url, user, total=6, shown=shown)
        assert await ledger_state(url) == (6, 3)


async def presence(peer: Peer, event: str, name: str) -> None:
    """Wait for ``name`` to have ``event`` (joined, left), skipping everyone else's."""
    while True:
        message = await peer.next_of(Presence, timeout=10)
        if (message.event, message.client.name) == (event, name):
            return


async def test_reconnecting_under_the_ledger_dialog_does_not_ask_twice(tmp_path: Path, start_tally: StartTally) -> None:
    """Ctrl+R while the different-ledger dialog is open does not stack a second one: one Escape answers it."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        async with await Peer.join(url, "watcher") as watcher:
            terminal, _ = await ledger_dialog(url, start_tally)
            terminal.type("\x12")  # ctrl+r: reconnect now
            await presence(watcher, "left", "ann")
            await presence(watcher, "joined", "ann")  # reconnected: it is told the ledger again
            terminal.type("\x1b")  # Escape: keep them for their own ledger
            await until_shown(terminal, "● connected", "kept 1 add(s) for", timeout=4)
            assert not terminal.shows("This is a different ledger")
            assert await ledger_state(url) == (0, 0)
