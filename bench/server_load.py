"""The scenarios that load a server through a swarm of lean clients, one coroutine each.

Each takes the swarm (already speaking the server's dialect) and the command
line's options, and returns its result: ``valid`` and, if so, its metrics. The
registry in bench.scenarios names them and lists the metrics each returns.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.swarm import Options, Swarm, cpu_seconds, percentile, rss_kib


async def fanout(swarm: Swarm, options: Options) -> dict[str, Any]:
    """One client sends ``rate`` adds a second; latency until every client has each update."""
    clients, rate, updates = options.clients, options.rate, options.updates
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


async def capacity(swarm: Swarm, options: Options) -> dict[str, Any]:
    """One sender keeps ``window`` updates in flight; updates a second delivered to every client."""
    clients, seconds, window, pid = options.clients, options.seconds, options.window, options.pid
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


async def joinstorm(swarm: Swarm, options: Options) -> dict[str, Any]:
    """All clients connect at once; time until every one knows all the others are there."""
    clients = options.clients
    swarm.expected_peers = clients
    started = await swarm.connect(clients)
    connected = time.monotonic()
    ok = await swarm.wait(lambda: all(t.peers_complete_at is not None for t in swarm.trackers.values()), 120)
    trackers = list(swarm.trackers.values())
    if not ok:
        return {"valid": False, "why": "not every client saw everyone"}
    settled = max(t.peers_complete_at for t in trackers if t.peers_complete_at is not None)
    return {"valid": True, "settle_s": settled - started, "connect_s": connected - started}


async def memory(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Server memory per connection: idle, then after some traffic."""
    clients, pid = options.clients, options.pid
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


async def durable(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Many clients add at once, each keeping ``window`` adds unacknowledged; acked adds a second."""
    clients, seconds, window = options.clients, options.seconds, options.window
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


async def tenk(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Hold ``clients`` connections, then check one update reaches every one."""
    clients = options.clients
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
