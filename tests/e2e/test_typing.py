"""Typing into the real dashboard in a pty: each Enter adds exactly its line, at any speed, pasted or typed."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tally.server.protocol import Ack, Error, Update
from tests.e2e.conftest import StartTally
from tests.support import waiting
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED, ServerProcess
from tests.support.terminal import Terminal, until_shown

SENTINEL = 1000  # typed last, alone: once it lands, everything typed before it has landed


@dataclass
class Watch:
    """Every update a watching peer receives, and those of the dashboard's name."""

    name: str
    all: list[Update] = field(default_factory=list)

    @property
    def amounts(self) -> list[int]:
        return [update.amount for update in self.all if update.name == self.name]


@contextlib.asynccontextmanager
async def watching(url: str, name: str) -> AsyncIterator[Watch]:
    watch = Watch(name)
    peer = await Peer.join(url, "watcher")

    async def collect() -> None:
        while True:
            watch.all.append(await peer.next_of(Update, timeout=60))

    task = asyncio.create_task(collect())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peer.close()


async def flood(url: str, at_least: int, done: threading.Event, counter: list[int]) -> None:
    """Another client adding 1 at a time in rounds of 50, each round once the last is acked, until ``done``."""
    async with await Peer.join(url, "flood") as peer:
        while counter[0] < at_least or not done.is_set():
            for _ in range(50):
                counter[0] += 1
                await peer.send(type="add", op=str(counter[0]), amount=1)
            acked = 0
            while acked < 50:
                message = await peer.receive(timeout=10)
                assert not isinstance(message, Error), message
                acked += isinstance(message, Ack)


async def dashboard(start_tally: StartTally, url: str) -> Terminal:
    terminal = start_tally("--url", url, "--no-spawn", "--name", "typist")
    await until_shown(terminal, "● connected")
    return terminal


async def settle(terminal: Terminal, watch: Watch, typed: int) -> list[int]:
    """The dashboard's amounts once ``typed`` has landed, checked by typing the sentinel after it."""
    await waiting.until(lambda: sum(watch.amounts) >= typed, timeout=15, what=f"{typed} added; {watch.amounts}")
    terminal.type(f"{SENTINEL}\r")
    await waiting.until(lambda: SENTINEL in watch.amounts, timeout=15, what=f"the sentinel; {watch.amounts}")
    amounts = watch.amounts
    return amounts[: amounts.index(SENTINEL)]


@pytest.mark.parametrize(
    ("line", "times", "gap"),
    [("1", 20, 0.01), ("1", 20, 0.0), ("12", 10, 0.0), ("12", 10, 0.01)],
    ids=["1x20-10ms", "1x20-macro", "12x10-macro", "12x10-10ms"],
)
async def test_each_enter_adds_its_line_while_another_client_floods(
    tmp_path: Path, start_tally: StartTally, line: str, times: int, gap: float
) -> None:
    """Keys typed 10 ms apart or all at once, while another client floods the server, add exactly one line per Enter."""
    keys = [*line, "\r"] * times
    with ServerProcess(tmp_path / "tally.db", *UNLIMITED) as server:
        url = server.start()
        async with watching(url, "typist") as watch:
            terminal = await dashboard(start_tally, url)
            done, sent = threading.Event(), [0]
            flooding = asyncio.create_task(flood(url, 1000, done, sent))
            await waiting.until(lambda: sent[0] >= 100 or flooding.done(), what="the flood to start")
            try:
                if gap:
                    await asyncio.to_thread(terminal.type_slowly, keys, gap)  # the delay between keys is the test
                else:
                    terminal.type("".join(keys))  # a keyboard macro: every key in one write
            finally:
                done.set()
            await flooding
            assert await settle(terminal, watch, int(line) * times) == [int(line)] * times
            async with await Peer.join(url, "auditor") as auditor:
                assert auditor.welcome is not None
                assert auditor.welcome.total == sent[0] + int(line) * times + SENTINEL


async def test_a_pasted_block_enters_each_complete_line(tmp_path: Path, start_tally: StartTally) -> None:
    """A bracketed paste of `5⏎7⏎11` adds +5 then +7 and leaves 11 in the box, which Enter then adds."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        async with watching(url, "typist") as watch:
            terminal = await dashboard(start_tally, url)
            terminal.type("\x1b[200~5\r7\r11\x1b[201~")
            await waiting.until(lambda: watch.amounts == [5, 7], what=f"+5 and +7; {watch.amounts}")
            # The last line, without a newline, waits in the input box.
            await waiting.until(lambda: re.search(r"▊\s+11\s+▎", terminal.text()) is not None, what="11 in the box")
            assert watch.amounts == [5, 7]
            terminal.type("\r")
            assert await settle(terminal, watch, 23) == [5, 7, 11]
