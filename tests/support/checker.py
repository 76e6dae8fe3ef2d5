"""A Jepsen-style counter check for Tally: writers that add like dashboards, and the verdict on what they saw.

Each :class:`Writer` sends its adds (op ids unique across the run) to the servers it is
given, one server at a time, resending every add not yet acknowledged after any
reconnect or ``unavailable``, as the dashboard does, until every add is acknowledged. It
records every ack and every update it sees, with the epoch of the connection that
brought it. :func:`verdict` then says what went wrong, if anything:

- an acknowledged add that is not in the final total (lost), or one counted twice;
- an (epoch, seq) that names two different adds (a seq reused within one epoch);
- an add never acknowledged.

The total alone finds a lost or doubled add (amounts are random, so a loss and a double
cancelling out is vanishingly unlikely); the seqs find the reuse that the total cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from tally.server.protocol import (
    SUBPROTOCOL_V2,
    Ack,
    Error,
    StoreStatus,
    Update,
    Welcome,
    decode_server_frame,
)

__all__ = ["Record", "Writer", "verdict"]


@dataclass
class Record:
    """What all the writers of one run sent and saw."""

    sent: dict[str, int] = field(default_factory=dict)  # op -> amount
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # op -> (epoch, seq) of its ack
    seen: dict[tuple[int, int], str] = field(default_factory=dict)  # (epoch, seq) -> the op it named
    clashes: list[str] = field(default_factory=list)  # (epoch, seq) naming two ops


class Writer:
    def __init__(self, name: str, urls: Sequence[str], record: Record) -> None:
        self.name = name
        self.urls = list(urls)
        self.record = record
        self.secret = f"checker-secret-{name}".ljust(16, ".")
        self.pending: dict[str, int] = {}  # sent or to send, not yet acknowledged, in order
        self.queue: list[tuple[str, int]] = []  # typed, not yet sent
        self.epoch = 0
        self._wake = asyncio.Event()
        self._server = random.Random(name).randrange(len(self.urls))

    def add(self, op: str, amount: int) -> None:
        """Type an add: it is sent, and sent again, until acknowledged."""
        self.record.sent[op] = amount
        self.pending[op] = amount
        self.queue.append((op, amount))
        self._wake.set()

    async def run(self) -> None:
        """Stay connected until cancelled: one server after another when one goes away."""
        while True:
            url = self.urls[self._server % len(self.urls)]
            with contextlib.suppress(OSError, ConnectionClosed, InvalidHandshake, InvalidStatus, TimeoutError):
                await self._session(url)
            self._server += 1
            await asyncio.sleep(0.05)  # the workload's pace between tries, not a wait on a condition

    async def _session(self, url: str) -> None:
        subprotocols = [Subprotocol(SUBPROTOCOL_V2)]
        async with connect(url, subprotocols=subprotocols, open_timeout=5, max_queue=None) as connection:
            await connection.send(json.dumps({"type": "hello", "name": self.name, "secret": self.secret,
                                              "role": "watcher"}))  # fmt: skip
            welcome = None
            async with asyncio.timeout(10):
                while welcome is None:
                    welcome = next((m for m in decode_server_frame(await connection.recv()) if isinstance(m, Welcome)),
                                   None)  # fmt: skip
            self.epoch = welcome.epoch
            self.queue = list(self.pending.items())  # everything not acknowledged goes again
            sender = asyncio.create_task(self._send(connection))
            try:
                async for frame in connection:
                    for message in decode_server_frame(frame):
                        self._take(message)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await sender

    async def _send(self, connection: ClientConnection) -> None:
        while True:
            while self.queue:
                op, amount = self.queue.pop(0)
                if op in self.pending:
                    await connection.send(json.dumps({"type": "add", "op": op, "amount": amount}))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)
            if not self.queue and self.pending:
                self.queue = list(self.pending.items())  # unanswered for a while: once more (a dup is harmless)

    def _take(self, message: object) -> None:
        record = self.record
        if isinstance(message, Update) and message.op is not None:
            key = (self.epoch, message.seq)
            known = record.seen.setdefault(key, message.op)
            if known != message.op:
                record.clashes.append(f"epoch {key[0]} seq {key[1]}: {known} and {message.op}")
        elif isinstance(message, Ack):
            if self.pending.pop(message.op, None) is not None:
                record.acked[message.op] = (self.epoch, message.seq)
        elif isinstance(message, Error) and message.op in self.pending and message.code == "unavailable":
            pass  # kept: sent again when the store is back, or after a reconnect
        elif isinstance(message, StoreStatus) and message.state == "available":
            self.queue = list(self.pending.items())
            self._wake.set()


def verdict(record: Record, total: int) -> list[str]:
    """What the run got wrong (empty: nothing), given the final total."""
    problems = []
    unacked = set(record.sent) - set(record.acked)
    if unacked:
        problems.append(f"{len(unacked)} add(s) never acknowledged")
    expected = sum(record.sent.values())
    if total != expected:
        problems.append(f"the total is {total:,}, but the adds sum to {expected:,} (off by {total - expected:+,})")
    problems.extend(record.clashes)
    return problems
