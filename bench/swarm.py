"""The load generator's machinery, shared by every scenario: dialects, the swarm of clients, measures.

A Dialect says how to speak to one kind of server; a Swarm opens lean clients
(bench.wsclient) and keeps, per client, what it has seen; Options are what the
command line asked a scenario for. The rest reads a server's memory and CPU
from /proc and takes percentiles.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bench.wsclient import WSClient, connect


@dataclass
class Dialect:
    """How to speak to a server: Tally's protocol, or the websockets counter example's."""

    name: str
    path: str
    subprotocol: str | None
    hello: Any  # (index) -> bytes | None
    add: Any  # (op) -> bytes
    seq: re.Pattern[bytes]  # captures the sequence number of each update in a frame
    ack: re.Pattern[bytes] | None


TALLY = Dialect(
    "tally", "/", "tally.v1",
    lambda i: json.dumps({"type": "hello", "name": f"bench-{i}", "session": f"b{os.getpid()}-{i}"}).encode(),
    lambda op: b'{"type":"add","op":"%d","amount":1}' % op,
    re.compile(rb'"type":"update","seq":(\d+)'), re.compile(rb'"type":"ack","op":"(\d+)"'),
)  # fmt: skip
COUNTER = Dialect(
    "counter", "/", None, lambda i: None, lambda op: b'{"action":"plus"}',
    re.compile(rb'"value":\s*(\d+)'), None,
)  # fmt: skip
DIALECTS = {dialect.name: dialect for dialect in (TALLY, COUNTER)}
USERS = re.compile(rb'"count":\s*(\d+)')


@dataclass(frozen=True)
class Options:
    """What the command line asked a scenario for; each scenario reads the fields it uses."""

    clients: int
    rate: float  # adds a second
    updates: int
    seconds: float
    window: int  # adds a sender keeps in flight
    pid: int  # the server's, for its memory and CPU


@dataclass
class Tracker:
    """What one client has seen."""

    base: int | None = None  # seq (or value) at connect
    last: int | None = None
    arrivals: dict[int, float] = field(default_factory=dict)
    in_order: bool = True
    peers: int = 0  # how many clients this one knows are connected
    peers_complete_at: float | None = None
    acks: int = 0


class Swarm:
    def __init__(self, dialect: Dialect, port: int, expected_peers: int = 0) -> None:
        self.dialect = dialect
        self.port = port
        self.expected_peers = expected_peers
        self.clients: list[WSClient] = []
        self.trackers: dict[WSClient, Tracker] = {}
        self.timed = False  # keep each update's arrival time (only latency needs them)

    def on_text(self, client: WSClient, payload: bytes, now: float) -> None:
        tracker = self.trackers.setdefault(client, Tracker())  # frames can come with the 101
        if self.dialect is TALLY and payload.startswith(b'{"type":"welcome"'):
            # A welcome comes alone and lists everyone, so it can be large: one pass counts
            # the clients, and its seq comes before the list.
            tracker.base = tracker.last = int(re.search(rb'"seq":(\d+)', payload).group(1))  # type: ignore[union-attr]
            tracker.peers = payload.count(b'"address":')
        elif self.dialect is TALLY:
            # A batch of presence can be large too: `in` looks for a type far faster than a
            # regex does, so each regex runs only over frames that hold its type.
            if b'"type":"update"' in payload:
                self._arrive_run(tracker, [int(seq) for seq in self.dialect.seq.findall(payload)], now)
            if b'"type":"presence"' in payload:
                tracker.peers += payload.count(b'"event":"joined"') - payload.count(b'"event":"left"')
            if self.dialect.ack is not None and b'"type":"ack"' in payload:
                tracker.acks += len(self.dialect.ack.findall(payload))
        else:
            seqs = [int(seq) for seq in self.dialect.seq.findall(payload)]
            if seqs and tracker.base is None:  # the counter's first value is the state at connect
                tracker.base = tracker.last = seqs.pop(0)
            if seqs:
                self._arrive_run(tracker, seqs, now)
            for match in USERS.finditer(payload):
                tracker.peers = int(match.group(1))
        if tracker.peers_complete_at is None and self.expected_peers and tracker.peers >= self.expected_peers:
            tracker.peers_complete_at = now

    def _arrive_run(self, tracker: Tracker, seqs: list[int], now: float) -> None:
        """The updates of one frame: checked as a whole, since a frame can hold a hundred."""
        first = seqs[0] if tracker.last is None else tracker.last + 1
        if seqs != list(range(first, first + len(seqs))):
            tracker.in_order = False
        tracker.last = seqs[-1]
        if self.timed:
            for seq in seqs:
                tracker.arrivals.setdefault(seq, now)

    async def connect(self, count: int, *, concurrency: int = 10_000) -> float:
        """Open ``count`` clients at once (up to ``concurrency`` handshakes in flight); return when started."""
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                for attempt in range(20):
                    try:
                        client = await connect("127.0.0.1", self.port, self.dialect.path,
                                               self.dialect.subprotocol, self.on_text)  # fmt: skip
                        break
                    except OSError:
                        await asyncio.sleep(0.05 * (attempt + 1))
                else:
                    raise ConnectionError("could not connect")
                self.trackers.setdefault(client, Tracker())
                self.clients.append(client)
                hello = self.dialect.hello(index)
                if hello is not None:
                    client.send_text(hello)

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(len(self.clients), len(self.clients) + count)))
        return started

    async def wait(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def synced(self) -> bool:
        return all(t.base is not None for t in self.trackers.values())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
