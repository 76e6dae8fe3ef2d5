"""The dashboard in a real terminal of 80x24 (the size most terminals open at): the whole total in big digits,
every hint whole, and a name that is remembered and used for the adds a later start sends (issue 20)."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from tally.server.protocol import Update
from tests.e2e.conftest import StartTally
from tests.e2e.test_pending import connected, ledger_state, until_total
from tests.support import waiting
from tests.support.peers import Peer
from tests.support.servers import ServerProcess
from tests.support.terminal import shows_big, until_shown


async def test_the_whole_total_and_every_hint_are_readable_at_80x24(tmp_path: Path, start_tally: StartTally) -> None:
    """A 12-digit total in full in big digits, the explanation under the input, the pending caption with the
    total it leads to, and the key bar: each whole on the screen, never cut."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        async with await Peer.join(url, "big") as big:
            await big.send(type="add", op="1", amount=123_456_789_012)
            await until_total(url, 123_456_789_012)
        terminal = await connected(start_tally, url, "ann")
        await waiting.until(lambda: shows_big(terminal.text(), "123,456,789,012"), what=terminal.describe())
        await until_shown(terminal, "? Help", "F2 Chart", "F3 People", "F4 Log", "^z Undo", "^y Redo", "^q Quit")
        terminal.type("1,00")
        await until_shown(terminal, "commas only between 3 digits")
        terminal.type("\x7f" * 4)
        server.kill()
        await until_shown(terminal, "no server is listening")
        terminal.type("5\r")
        # Whole: on one line, or wrapped between words onto the next.
        screen = await until_shown(terminal, "1 pending →")
        lines = screen.splitlines()
        at = next(n for n, line in enumerate(lines) if "1 pending →" in line)
        assert "1 pending → 123,456,789,017" in lines[at] or "123,456,789,017" in lines[at + 1], screen


async def test_a_name_set_is_kept_after_a_restart_and_its_waiting_adds_go_under_it(
    tmp_path: Path, user: dict[str, str], start_tally: StartTally
) -> None:
    """ctrl+n zed, an add typed while the server is away, quit keeping it (k): config.toml holds the name; the next
    start (no --name) goes by zed and sends the add under zed."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        first = await connected(start_tally, url, "ann")
        first.type("\x0e")  # ctrl+n
        await until_shown(first, "Your name, as others see it")
        first.type("zed\r")
        await until_shown(first, "zed @")
        config = Path(user["XDG_CONFIG_HOME"]) / "tally" / "config.toml"
        await waiting.until(lambda: config.exists() and tomllib.loads(config.read_text()).get("name") == "zed")
        server.kill()
        await until_shown(first, "no server is listening")
        first.type("5\r")
        await until_shown(first, "1 pending")
        first.type("\x11")  # ctrl+q: adds wait, so it asks
        await until_shown(first, "Keep: quit, send them next time")
        first.type("k")
        assert first.wait(10) == 0, first.describe()
        assert first.has_written(b"1 add kept"), first.describe()
        server.start()
        async with await Peer.join(url, "auditor") as auditor:
            second = start_tally("--url", url, "--no-spawn")
            await until_shown(second, "● connected", "zed @")
            await until_total(url, 5)
            update = await auditor.next_of(Update, timeout=15)
            assert update.name == "zed" and update.amount == 5
        assert (await ledger_state(url))[0] == 5


async def test_two_ctrl_z_undo_two_adds_whatever_the_pause_between_them(
    tmp_path: Path, start_tally: StartTally
) -> None:
    """In a real terminal: +1 +2 +4 +8, then ctrl+z twice at once, then twice 1.5 s apart: each pair undoes two
    adds (15, 3, then 1 and 0); an undo that depended on timing would make one pair an undo and a redo."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        terminal = await connected(start_tally, url, "ann")
        total = 0
        for amount in (1, 2, 4, 8):
            terminal.type(f"{amount}\r")
            total += amount
            await until_total(url, total)
        terminal.type("\x1a\x1a")  # ctrl+z, ctrl+z: no pause at all
        await until_total(url, 3)
        terminal.type("\x1a")
        await until_total(url, 1)
        await asyncio.sleep(1.5)  # the pause under test (the input), not a wait for anything
        terminal.type("\x1a")
        await until_total(url, 0)
        assert await ledger_state(url) == (0, 8), terminal.describe()
