"""History paging beside adding: what dashboards asking for the total over time cost one that adds.

One client adds, one add at a time, each timed from its send to its ack, first alone (idle)
and then while ``clients`` others, each from an address of its own (127.0.0.2, .3, …: the
limits are by address), ask for history pages of 500 points back to spread ``since`` values,
one request in flight each, at ``rate`` pages a second each (0: as fast as they are answered).
A history request costs 10 frames of an address's budget (200 a second by default), so 20
pages a second is what one address gets from a server with its default limits; the benchmark's
servers have them lifted, so 0 shows what the store does when nothing holds the pagers back.
Before both, the adder lays down ``updates`` adds so that the pages have history to walk.
The target: the adder's p99 while others page within 1.5x idle.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.swarm import Options, Swarm, cpu_seconds, percentile


async def _join(port: int, name: str, host: str = "127.0.0.1") -> ClientConnection:
    """A tally.v2 client from ``host``, welcomed."""
    url = f"ws://127.0.0.1:{port}/"
    client = await connect(url, subprotocols=["tally.v2"], local_addr=(host, 0), max_size=None)  # type: ignore[list-item]
    await client.send(json.dumps({"type": "hello", "name": name, "secret": f"history-bench-{name}-secret"}))
    while '"type":"welcome"' not in str(await client.recv()):
        pass
    return client


async def _add(client: ClientConnection, op: str) -> float:
    """One add, sent and waited for until its ack; the seconds it took."""
    started = time.monotonic()
    await client.send(f'{{"type":"add","op":"{op}","amount":1}}')
    marker = f'"type":"ack","op":"{op}"'
    while marker not in str(await client.recv()):
        pass
    return time.monotonic() - started


async def _timed_adds(client: ClientConnection, prefix: str, seconds: float) -> list[float]:
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        times.append(await _add(client, f"{prefix}{len(times)}"))
    return times


async def _pager(
    port: int, host: str, since: tuple[float, float], rate: float, stop: asyncio.Event, pages: list[int]
) -> None:
    """History pages, one in flight, ``rate`` a second (0: unpaced), back to ``since`` values drawn from the
    given span, until ``stop``."""
    client = await _join(port, f"pager-{host}", host)
    asked, start = 0, time.monotonic()
    try:
        while not stop.is_set():
            if rate:
                await asyncio.sleep(max(0.0, start + asked / rate - time.monotonic()))
            asked += 1
            request = {"type": "history", "id": str(asked), "since": random.uniform(*since), "points": 500}
            await client.send(json.dumps(request))
            while '"type":"history"' not in str(await client.recv()):
                pass
            pages.append(1)
    finally:
        await client.close()


async def history_paging(swarm: Swarm, options: Options) -> dict[str, Any]:
    """See the module docstring."""
    port, seconds = swarm.port, options.seconds
    adder = await _join(port, "adder")
    began = time.time()
    for n in range(0, options.updates, 50):  # the history the pages walk, in blocks of 50 adds
        for i in range(1, 50):
            await adder.send(f'{{"type":"add","op":"fill{n}-{i}","amount":1}}')
        await _add(adder, f"fill{n}")  # answered after the 49 before it
    cpu_before, redis_before = cpu_seconds(*options.pids), cpu_seconds(options.redis_pid)
    idle = await _timed_adds(adder, "idle", seconds)
    # What the adds alone cost, to take out of what the busy phase cost.
    add_cpu = (cpu_seconds(*options.pids) - cpu_before) / max(1, len(idle))
    add_redis = (cpu_seconds(options.redis_pid) - redis_before) / max(1, len(idle))
    stop, pages = asyncio.Event(), list[int]()
    span = (began - 3600.0, time.time())
    hosts = [f"127.0.0.{2 + index}" for index in range(options.clients)]
    pagers = [asyncio.create_task(_pager(port, host, span, options.rate, stop, pages)) for host in hosts]
    await asyncio.sleep(0.5)  # every pager connected and asking
    cpu_before, redis_before, paged_before = cpu_seconds(*options.pids), cpu_seconds(options.redis_pid), len(pages)
    busy = await _timed_adds(adder, "busy", seconds)
    cpu, paged = cpu_seconds(*options.pids) - cpu_before - add_cpu * len(busy), len(pages) - paged_before
    redis_cpu = cpu_seconds(options.redis_pid) - redis_before - add_redis * len(busy)
    stop.set()
    await asyncio.gather(*pagers)
    await adder.close()
    if not idle or not busy or not paged:
        return {"valid": False, "why": "no add or page was answered"}
    idle_p99, busy_p99 = percentile(idle, 0.99) * 1e3, percentile(busy, 0.99) * 1e3
    return {
        "valid": True,
        "idle_p50_ms": percentile(idle, 0.5) * 1e3,
        "idle_p99_ms": idle_p99,
        "busy_p50_ms": percentile(busy, 0.5) * 1e3,
        "busy_p99_ms": busy_p99,
        "p99_busy_over_idle": busy_p99 / idle_p99,
        "pages_per_s": paged / seconds,
        # Less what the adds cost (as measured alone): each page's own.
        "server_cpu_ms_per_page": cpu / paged * 1e3,
        **({"redis_cpu_ms_per_page": redis_cpu / paged * 1e3} if options.redis_pid else {}),
    }
