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
    "tally", "/", "tally.v2",
    # A secret of 16 to 128 printable ASCII characters, its own per client (the session is its hash).
    lambda i: json.dumps({"type": "hello", "name": f"bench-{i}", "secret": f"bench-secret-{os.getpid()}-{i}"}).encode(),
    lambda op: b'{"type":"add","op":"%d","amount":1}' % op,
    re.compile(rb'"type":"update","seq":(\d+)'), re.compile(rb'"type":"ack","op":"(\d+)"'),
)  # fmt: skip
COUNTER = Dialect(
    "counter", "/", None, lambda i: None, lambda op: b'{"action":"plus"}',
    re.compile(rb'"value":\s*(\d+)'), None,
)  # fmt: skip
DIALECTS = {dialect.name: dialect for dialect in (TALLY, COUNTER)}
USERS = re.compile(rb'"count":\s*(\d+)')
# A welcome's own seq: the only "seq" that follows a "total" (in updates, seq comes first).
WELCOME_SEQ = re.compile(rb'"total":-?\d+,"seq":(\d+)')
WELCOME_ONLINE = re.compile(rb'"online":(\d+),"live":(true|false)')
ONLINE = re.compile(rb'"type":"online","count":(\d+),"live":(true|false)')


@dataclass(frozen=True)
class Options:
    """What the command line asked a scenario for; each scenario reads the fields it uses."""

    clients: int
    rate: float  # adds a second
    updates: int
    seconds: float
    window: int  # adds a sender keeps in flight
    pids: tuple[int, ...]  # the servers', for their memory and CPU (one per server)
    redis_pid: int = 0  # redis-server's, for its CPU (0: no Redis)
    churn: float = 100.0  # joins (and as many leaves) a second
    workers: int = 2  # client processes of a fleet (bench.fleet)
    worker_kind: str = "node"  # what they are: Node clients, or "python" (the lean asyncio client)
    readers: float = 1.0  # the share of a fleet's dashboards that read each update as it comes (bench.fleet)

    @property
    def pid(self) -> int:
        return self.pids[0] if self.pids else 0


@dataclass
class Tracker:
    """What one client has seen."""

    base: int | None = None  # seq (or value) at connect
    last: int | None = None
    arrivals: dict[int, float] = field(default_factory=dict)
    in_order: bool = True
    live: bool = True  # Tally: whether the room sends every join and leave (else only a count)
    listed: int = 0  # Tally, a live room: how many people the welcome's list and presence since add up to
    online: int = 0  # the latest count of people online the server sent
    peers_complete_at: float | None = None
    welcomed_at: float | None = None  # when its welcome (or, from a counter, its first value) came
    acks: int = 0

    @property
    def peers(self) -> int:
        """How many clients this one knows are connected: the list it holds in a live room, else the count."""
        return self.listed if self.live else self.online


class Swarm:
    """Lean clients of one server, or of several (a cluster): ``ports[i]`` is server i's."""

    def __init__(self, dialect: Dialect, ports: tuple[int, ...], expected_peers: int = 0) -> None:
        self.dialect = dialect
        self.ports = ports
        self.expected_peers = expected_peers
        self.clients: list[WSClient] = []
        self.trackers: dict[WSClient, Tracker] = {}
        self.timed = False  # keep each update's arrival time (only latency needs them)
        self._opened = 0  # clients ever opened: each hello gets a name and secret of its own

    @property
    def port(self) -> int:
        return self.ports[0]

    def on_text(self, client: WSClient, payload: bytes, now: float) -> None:
        tracker = self.trackers.get(client)
        if tracker is None:  # frames can come with the 101; a client closed by the swarm is forgotten
            if client.state.get("closed"):
                return
            tracker = self.trackers[client] = Tracker()
        if self.dialect is TALLY and payload.startswith(b'{"type":"welcome"'):
            # A welcome comes alone, and in a live room lists everyone, so it can be large.
            tracker.base = tracker.last = int(WELCOME_SEQ.search(payload).group(1))  # type: ignore[union-attr]
            tracker.welcomed_at = now
            online = WELCOME_ONLINE.search(payload)
            if online is not None:
                tracker.online, tracker.live = int(online.group(1)), online.group(2) == b"true"
            # Only client objects have "since" (an empty list in a room that is not live).
            tracker.listed = payload.count(b'"since":')
        elif self.dialect is TALLY:
            # A batch of presence can be large too: `in` looks for a type far faster than a
            # regex does, so each regex runs only over frames that hold its type.
            if b'"type":"update"' in payload:
                self._arrive_run(tracker, [int(seq) for seq in self.dialect.seq.findall(payload)], now)
            if b'"type":"presence"' in payload:
                tracker.listed += payload.count(b'"event":"joined"') - payload.count(b'"event":"left"')
            if b'"type":"online"' in payload:
                for match in ONLINE.finditer(payload):
                    tracker.online, tracker.live = int(match.group(1)), match.group(2) == b"true"
            if self.dialect.ack is not None and b'"type":"ack"' in payload:
                tracker.acks += len(self.dialect.ack.findall(payload))
        else:
            seqs = [int(seq) for seq in self.dialect.seq.findall(payload)]
            if seqs and tracker.base is None:  # the counter's first value is the state at connect
                tracker.base = tracker.last = seqs.pop(0)
                tracker.welcomed_at = now
            if seqs:
                self._arrive_run(tracker, seqs, now)
            for match in USERS.finditer(payload):
                tracker.online = int(match.group(1))
            tracker.live = False
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

    async def open(self, index: int, server: int = 0, *, hello: bool = True) -> WSClient:
        """One client of server ``server``; it says hello unless told not to."""
        for attempt in range(20):
            try:
                client = await connect("127.0.0.1", self.ports[server], self.dialect.path,
                                       self.dialect.subprotocol, self.on_text)  # fmt: skip
                break
            except OSError:
                await asyncio.sleep(0.05 * (attempt + 1))
        else:
            raise ConnectionError("could not connect")
        self.trackers.setdefault(client, Tracker())
        self.clients.append(client)
        message = self.dialect.hello(index) if hello else None
        if message is not None:
            client.send_text(message)
        return client

    def next_index(self) -> int:
        """The index of a client opened one by one (its name and secret are its own)."""
        self._opened += 1
        return self._opened - 1

    async def connect(self, count: int, *, concurrency: int = 10_000, server: int = 0, hello: bool = True) -> float:
        """Open ``count`` clients of server ``server`` at once (up to ``concurrency`` handshakes in flight).

        Returns when they started.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                await self.open(index, server, hello=hello)

        first, self._opened = self._opened, self._opened + count
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(first, first + count)))
        return started

    def close(self, client: WSClient) -> None:
        """Close ``client`` (a close frame, then the socket) and forget what it saw."""
        client.state["closed"] = True
        client.send(0x8, b"\x03\xe8")
        if client.transport is not None:
            client.transport.close()
        self.trackers.pop(client, None)
        self.clients.remove(client)

    async def wait(self, condition: Any, timeout: float, *, interval: float = 0.005) -> bool:
        """Poll ``condition`` every ``interval`` until it holds (True) or ``timeout`` passes (False).

        A condition over thousands of clients costs the load generator: poll it less often,
        and take times from what each tracker recorded.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(interval)
        return True

    def synced(self) -> bool:
        return all(t.base is not None for t in self.trackers.values())

    def current(self) -> float | None:
        """When every client had its welcome and knew everyone was online (``expected_peers``); None if not yet.

        Also None unless every client is at the same, latest, seq.
        """
        latest = None
        for tracker in self.trackers.values():
            if tracker.welcomed_at is None or tracker.peers_complete_at is None:
                return None
            if latest is None:
                latest = tracker.last
            elif tracker.last != latest:
                return None
        return max((max(t.welcomed_at or 0.0, t.peers_complete_at or 0.0) for t in self.trackers.values()),
                   default=None)  # fmt: skip


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(*pids: int) -> float:
    """CPU time of these processes (every thread, user and system), in seconds; 0 for pid 0.

    From each thread's schedstat (nanoseconds), not the process's stat (clock ticks of 10 ms): a few
    milliseconds of Redis over a measurement would otherwise read as 0 or 10 ms.
    """
    total = 0
    for pid in pids:
        if not pid:
            continue
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                    total += int(stat.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # the thread ended meanwhile
    return total / 1e9


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
