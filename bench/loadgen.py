"""The load generator: one scenario against one server, results as JSON on stdout.

Run by ``python -m bench`` in its own process, pinned to the other core from
the server's. Every client checks that it received every update, in order; a
run where any did not is reported invalid. Times come from the monotonic
clock, which on Linux is one clock for every process.

    python -m bench.loadgen --dialect tally --port 8765 --scenario fanout --clients 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import sys
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
USERS = re.compile(rb'"count":\s*(\d+)')


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


async def fanout(swarm: Swarm, clients: int, rate: float, updates: int) -> dict[str, Any]:
    """One client sends ``rate`` adds a second; latency until every client has each update."""
    swarm.timed = True
    await swarm.connect(clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    sender = swarm.clients[0]
    sent: list[float] = []
    start = time.monotonic()
    for k in range(updates):
        await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
        sent.append(time.monotonic())
        sender.send_text(swarm.dialect.add(k + 1))
    trackers = list(swarm.trackers.values())
    done = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last - t.base >= updates
                                        for t in trackers), 60)  # fmt: skip
    valid = done and all(t.in_order for t in trackers)
    latencies = []
    for k in range(updates):
        arrivals = [t.arrivals.get(t.base + k + 1) for t in trackers if t.base is not None]
        if None in arrivals or not arrivals:
            valid = False
            break
        latencies.append((max(a for a in arrivals if a is not None) - sent[k]) * 1000)
    if not valid or not latencies:
        return {"valid": False, "why": "an update was lost or out of order"}
    return {"valid": True, "p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies)}  # fmt: skip


async def capacity(swarm: Swarm, clients: int, seconds: float, window: int, pid: int) -> dict[str, Any]:
    """One sender keeps ``window`` updates in flight; updates a second delivered to every client."""
    await swarm.connect(clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    trackers = list(swarm.trackers.values())
    sender = swarm.clients[0]
    own = swarm.trackers[sender]
    assert own.base is not None
    cpu_before, start = cpu_seconds(pid), time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        received = (own.last or own.base) - own.base
        while sent - received < window:
            sent += 1
            sender.send_text(swarm.dialect.add(sent))
        await asyncio.sleep(0.0005)
    ok = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last - t.base >= sent
                                      for t in trackers), 60)  # fmt: skip
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu_before
    if not ok or not all(t.in_order for t in trackers):
        return {"valid": False, "why": "an update was lost or out of order"}
    deliveries = sent * clients
    return {"valid": True, "updates_per_s": sent / elapsed, "deliveries_per_s": deliveries / elapsed,
            "cpu_us_per_delivery": cpu / deliveries * 1e6}  # fmt: skip


async def joinstorm(swarm: Swarm, clients: int) -> dict[str, Any]:
    """All clients connect at once; time until every one knows all the others are there."""
    swarm.expected_peers = clients
    started = await swarm.connect(clients)
    connected = time.monotonic()
    ok = await swarm.wait(lambda: all(t.peers_complete_at is not None for t in swarm.trackers.values()), 120)
    trackers = list(swarm.trackers.values())
    if not ok:
        return {"valid": False, "why": "not every client saw everyone"}
    settled = max(t.peers_complete_at for t in trackers if t.peers_complete_at is not None)
    return {"valid": True, "settle_s": settled - started, "connect_s": connected - started}


async def memory(swarm: Swarm, clients: int, pid: int) -> dict[str, Any]:
    """Server memory per connection: idle, then after some traffic."""
    before = rss_kib(pid)
    await swarm.connect(clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    await asyncio.sleep(0.5)
    idle = rss_kib(pid)
    sender = swarm.clients[0]
    for k in range(100):
        sender.send_text(swarm.dialect.add(k + 1))
        await asyncio.sleep(0.002)
    trackers = list(swarm.trackers.values())
    await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last - t.base >= 100
                                 for t in trackers), 30)  # fmt: skip
    await asyncio.sleep(0.5)
    busy = rss_kib(pid)
    return {
        "valid": True,
        "idle_kib_per_conn": (idle - before) / clients,
        "busy_kib_per_conn": (busy - before) / clients,
    }


async def durable(swarm: Swarm, clients: int, seconds: float, window: int) -> dict[str, Any]:
    """Many clients add at once, each keeping ``window`` adds unacknowledged; acked adds a second."""
    await swarm.connect(clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    sent = {client: 0 for client in swarm.clients}
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for client in swarm.clients:
            while sent[client] - swarm.trackers[client].acks < window:
                sent[client] += 1
                client.send_text(swarm.dialect.add(sent[client]))
        await asyncio.sleep(0.001)
    elapsed = time.monotonic() - start
    acked = sum(t.acks for t in swarm.trackers.values())
    return {"valid": True, "acked_per_s": acked / elapsed}


async def tenk(swarm: Swarm, clients: int) -> dict[str, Any]:
    """Hold ``clients`` connections, then check one update reaches every one."""
    started = time.monotonic()
    await swarm.connect(clients, concurrency=500)
    if not await swarm.wait(swarm.synced, 280):
        return {"valid": False, "why": "clients did not sync"}
    connected = time.monotonic() - started
    swarm.clients[0].send_text(swarm.dialect.add(1))
    trackers = list(swarm.trackers.values())
    ok = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last > t.base
                                      for t in trackers), 60)  # fmt: skip
    return {"valid": ok, "held": len(trackers) if ok else 0, "connect_s": connected}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    dialect = TALLY if args.dialect == "tally" else COUNTER
    swarm = Swarm(dialect, args.port)
    if args.scenario == "fanout":
        return await fanout(swarm, args.clients, args.rate, args.updates)
    if args.scenario == "capacity":
        return await capacity(swarm, args.clients, args.seconds, args.window, args.pid)
    if args.scenario == "joinstorm":
        return await joinstorm(swarm, args.clients)
    if args.scenario == "memory":
        return await memory(swarm, args.clients, args.pid)
    if args.scenario == "durable":
        return await durable(swarm, args.clients, args.seconds, args.window)
    if args.scenario == "tenk":
        return await tenk(swarm, args.clients)
    if args.scenario == "dashboard":
        from bench.dashboard import absorb  # imports Textual, which the other scenarios need not load

        return await absorb(args.port, args.rate, args.seconds)
    raise SystemExit(f"unknown scenario {args.scenario}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialect", choices=["tally", "counter"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, default=0)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=50)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(main(arguments))
    json.dump(result, sys.stdout)
