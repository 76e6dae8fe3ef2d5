"""The scenarios that load a server through a swarm of lean clients, one coroutine each.

Each takes the swarm (already speaking the server's dialect) and the command
line's options, and returns its result: ``valid`` and, if so, its metrics. The
registry in bench.scenarios names them and lists the metrics each returns.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
import time
from typing import Any

from bench.swarm import Options, Swarm, Tracker, cpu_seconds, percentile, rss_kib
from bench.wsclient import WSClient


async def send_paced(swarm: Swarm, sender: WSClient, rate: float, count: int, first_op: int = 1) -> list[float]:
    """Send ``count`` adds at ``rate`` a second; when each was sent."""
    sent: list[float] = []
    start = time.monotonic()
    for k in range(count):
        await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
        sent.append(time.monotonic())
        sender.send_text(swarm.dialect.add(first_op + k))
    return sent


def latencies_ms(trackers: list[Tracker], sent: list[float], first: int) -> list[float] | None:
    """For each update sent (the first is ``first`` updates after each client's welcome), the time until
    every one of ``trackers`` had it; None if one was lost."""
    latencies = []
    for k, at in enumerate(sent):
        arrivals = [t.arrivals.get(t.base + first + k) for t in trackers if t.base is not None]
        if not arrivals or None in arrivals:
            return None
        latencies.append((max(a for a in arrivals if a is not None) - at) * 1000)
    return latencies


async def received(swarm: Swarm, trackers: list[Tracker], count: int, timeout: float, interval: float = 0.005) -> bool:
    """Wait until every one of ``trackers`` has ``count`` updates since its welcome, all in order."""
    done = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last - t.base >= count
                                        for t in trackers), timeout, interval=interval)  # fmt: skip
    return done and all(t.in_order for t in trackers)


def spread(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies)}


async def fanout(swarm: Swarm, options: Options) -> dict[str, Any]:
    """One client sends ``rate`` adds a second; latency until every client has each update."""
    clients, rate, updates = options.clients, options.rate, options.updates
    swarm.timed = True
    await swarm.connect(clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    sent = await send_paced(swarm, swarm.clients[0], rate, updates)
    trackers = list(swarm.trackers.values())
    latencies = latencies_ms(trackers, sent, 1) if await received(swarm, trackers, updates, 60) else None
    if not latencies:
        return {"valid": False, "why": "an update was lost or out of order"}
    return {"valid": True, **spread(latencies)}


async def cluster_fanout(swarm: Swarm, options: Options) -> dict[str, Any]:
    """One dashboard on the first server adds ``rate`` a second; latency until every one of ``clients``
    dashboards on the last server has each update. With one server, both are the same server."""
    clients, rate, updates = options.clients, options.rate, options.updates
    swarm.timed = True
    await swarm.connect(1, server=0)
    await swarm.connect(clients, server=len(swarm.ports) - 1)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    sender, *receivers = swarm.clients
    sent = await send_paced(swarm, sender, rate, updates)
    trackers = [swarm.trackers[client] for client in receivers]
    latencies = latencies_ms(trackers, sent, 1) if await received(swarm, trackers, updates, 60) else None
    if not latencies:
        return {"valid": False, "why": "an update was lost or out of order"}
    return {"valid": True, **spread(latencies)}


async def capacity(swarm: Swarm, options: Options) -> dict[str, Any]:
    """One sender keeps ``window`` updates in flight; updates a second delivered to every client."""
    await swarm.connect(options.clients)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    return await flood(swarm, options)


async def cluster_capacity(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Capacity, with the clients spread evenly over the servers and the sender on the first.

    CPU per delivery counts every server and redis-server; per update, the servers' and Redis's apart.
    """
    servers = len(swarm.ports)
    for server in range(servers):
        await swarm.connect(options.clients // servers + (server < options.clients % servers), server=server)
    if not await swarm.wait(swarm.synced, 60):
        return {"valid": False, "why": "clients did not sync"}
    return await flood(swarm, options)


async def flood(swarm: Swarm, options: Options) -> dict[str, Any]:
    """The first client keeps ``window`` adds in flight for ``seconds``; every client must get every update."""
    seconds, window, pids = options.seconds, options.window, options.pids
    clients = len(swarm.clients)
    trackers = list(swarm.trackers.values())
    sender = swarm.clients[0]
    own = swarm.trackers[sender]
    assert own.base is not None
    cpu_before, redis_before, start = cpu_seconds(*pids), cpu_seconds(options.redis_pid), time.monotonic()
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
    cpu, redis_cpu = cpu_seconds(*pids) - cpu_before, cpu_seconds(options.redis_pid) - redis_before
    if not ok or not all(t.in_order for t in trackers):
        return {"valid": False, "why": "an update was lost or out of order"}
    deliveries = sent * clients
    result = {"valid": True, "updates_per_s": sent / elapsed, "deliveries_per_s": deliveries / elapsed,
              "cpu_us_per_delivery": (cpu + redis_cpu) / deliveries * 1e6,
              "server_cpu_us_per_update": cpu / sent * 1e6}  # fmt: skip
    if options.redis_pid:
        result["redis_cpu_us_per_update"] = redis_cpu / sent * 1e6
    return result


async def joinstorm(swarm: Swarm, options: Options) -> dict[str, Any]:
    """All clients connect at once; time until every one knows all the others are there.

    In a live room (Tally up to 300 people) that is every client holding the whole list (its
    welcome's, plus the joins since); in a larger one, the count of people online, which is all
    a dashboard is sent there. ``connect_s`` is when the last handshake completed,
    ``welcomed_s`` when the last client had its welcome (a counter's first value).
    """
    clients = options.clients
    swarm.expected_peers = clients
    started = await swarm.connect(clients)
    connected = time.monotonic()
    ok = await swarm.wait(lambda: all(t.peers_complete_at is not None for t in swarm.trackers.values()), 120)
    trackers = list(swarm.trackers.values())
    if not ok:
        return {"valid": False, "why": "not every client saw everyone"}
    settled = max(t.peers_complete_at for t in trackers if t.peers_complete_at is not None)
    welcomed = max(t.welcomed_at or settled for t in trackers)
    settle, connect = settled - started, connected - started
    return {"valid": True, "settle_s": settle, "connect_s": connect, "settle_per_connect": settle / connect,
            "welcomed_s": welcomed - started}  # fmt: skip


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
    acked_before = sum(t.acks for t in swarm.trackers.values())
    server_before, redis_before = cpu_seconds(*options.pids), cpu_seconds(options.redis_pid)
    start, own_before = time.monotonic(), time.process_time()
    while time.monotonic() - start < seconds:
        for client in swarm.clients:
            while sent[client] - swarm.trackers[client].acks < window:
                sent[client] += 1
                client.send_text(swarm.dialect.add(sent[client]))
        await asyncio.sleep(0.001)
    elapsed, own = time.monotonic() - start, time.process_time() - own_before
    server_cpu, redis_cpu = cpu_seconds(*options.pids) - server_before, cpu_seconds(options.redis_pid) - redis_before
    acked = sum(t.acks for t in swarm.trackers.values()) - acked_before
    if not acked:
        return {"valid": False, "why": "no add was acknowledged"}
    # The generator's share of its core: near 100%, it (not the server) bounds acked_per_s.
    result = {"valid": True, "acked_per_s": acked / elapsed, "server_cpu_us_per_add": server_cpu / acked * 1e6,
              "server_cpu_pct": server_cpu / elapsed * 100, "gen_cpu_pct": own / elapsed * 100}  # fmt: skip
    if options.redis_pid:
        result["redis_cpu_us_per_add"] = redis_cpu / acked * 1e6
    return result


async def tenk(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Connect ``clients`` dashboards (500 handshakes at a time) until every one is in sync, then check
    that one update reaches every one.

    In sync: its welcome, the latest seq, and the count of everyone online (a room this large
    sends no lists: a dashboard asks for the page it shows).
    """
    clients = options.clients
    swarm.expected_peers = clients
    started = time.monotonic()
    await swarm.connect(clients, concurrency=500)
    if not await swarm.wait(lambda: swarm.current() is not None, 280, interval=0.1):
        return {"valid": False, "why": "clients did not sync"}
    connected = (swarm.current() or 0.0) - started
    swarm.clients[0].send_text(swarm.dialect.add(1))
    trackers = list(swarm.trackers.values())
    ok = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last > t.base
                                      for t in trackers), 60)  # fmt: skip
    return {"valid": ok, "held": len(trackers) if ok else 0, "connect_s": connected}


async def churn(swarm: Swarm, options: Options) -> dict[str, Any]:
    """``clients`` dashboards stay connected while one of them adds ``rate`` a second, in four blocks:
    quiet, churn, churn, quiet. During churn others join at ``churn`` a second and each leaves
    about a second later (as many leaves as joins). Fan-out latency (until every staying
    dashboard has the update) with churn, against without, in the same run.
    """
    clients, rate, updates, churn_rate = options.clients, options.rate, options.updates, options.churn
    swarm.timed = True
    await swarm.connect(clients, concurrency=500)
    if not await swarm.wait(swarm.synced, 120, interval=0.1):
        return {"valid": False, "why": "clients did not sync"}
    stayers = list(swarm.trackers.values())
    sender = swarm.clients[0]
    joining: set[asyncio.Task[WSClient]] = set()
    churners: collections.deque[tuple[WSClient, float]] = collections.deque()
    join_ms: list[float] = []
    joined = left = 0

    async def join() -> WSClient:
        started = time.monotonic()
        client = await swarm.open(swarm.next_index())
        while swarm.trackers[client].welcomed_at is None:  # noqa: ASYNC110 - the welcome's arrival is recorded
            await asyncio.sleep(0.005)
        join_ms.append(((swarm.trackers[client].welcomed_at or 0.0) - started) * 1000)
        churners.append((client, time.monotonic()))
        return client

    async def churning(stop: asyncio.Event) -> None:
        nonlocal joined, left
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            while next_at <= now:
                next_at += 1 / churn_rate
                task = asyncio.create_task(join())
                joining.add(task)
                task.add_done_callback(joining.discard)
                joined += 1
                if churners and now - churners[0][1] >= 1.0:
                    swarm.close(churners.popleft()[0])
                    left += 1
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    blocks = (False, True, True, False)
    per_block = updates // len(blocks)
    quiet: list[float] = []
    busy: list[float] = []
    churn_seconds = 0.0
    first = 1
    for churning_now in blocks:
        stop = asyncio.Event()
        task = asyncio.create_task(churning(stop)) if churning_now else None
        began = time.monotonic()
        sent = await send_paced(swarm, sender, rate, per_block, first)
        if not await received(swarm, stayers, first + per_block - 1, 60, interval=0.05):
            return {"valid": False, "why": "an update was lost or out of order"}
        if task is not None:
            stop.set()
            await task
            churn_seconds += time.monotonic() - began
        latencies = latencies_ms(stayers, sent, first)
        if latencies is None:
            return {"valid": False, "why": "an update was lost"}
        (busy if churning_now else quiet).extend(latencies)
        first += per_block
    if joining:
        await asyncio.wait(joining, timeout=10)
    if joining or len(join_ms) != joined:
        return {"valid": False, "why": "a joining dashboard was not welcomed"}
    quiet_p99, busy_p99 = percentile(quiet, 0.99), percentile(busy, 0.99)
    return {"valid": True, "p99_ms": quiet_p99, "churn_p99_ms": busy_p99, "p99_churn_over_quiet": busy_p99 / quiet_p99,
            "p50_ms": statistics.median(quiet), "churn_p50_ms": statistics.median(busy),
            "joins_per_s": joined / churn_seconds, "leaves_per_s": left / churn_seconds,
            "join_p99_ms": percentile(join_ms, 0.99)}  # fmt: skip
