"""A load generator in several processes: the fleet of client workers, and the scenarios that use it.

One Python process (the load generator, bench.loadgen) cannot read one update
on 10,000 sockets faster than about 0.15 s of its core, so past a few
thousand dashboards it, and not the server, sets the pace. A fleet spreads
the dashboards over worker processes, Node `ws` clients by default
(bench/peers/node/clients.js; ``--worker-kind python`` runs this module's
worker instead, with the lean asyncio client), which the operating system can
run on every core the load generator was given.

Reading one small frame costs a client about what writing it costs the server
(on loopback both are mostly the kernel's work), so on a machine where the
generator has no more cores than the server it cannot outrun it by reading
every socket. With ``--readers F`` below 1 (Node workers), only that share of
the dashboards, spread evenly, reads each update as it comes, and the latency
is taken over them; the others read every 5 s (so they answer pings), and at
the end every dashboard is drained and checked to have had every update in
order, as always. The server does the same work either way (each write lands
in the socket's buffer) but for waking a reader on this machine, which over a
network is the reader's machine's work. The load generator keeps the
one client that adds, and so the clock: each worker reports, for every update,
when the last of its clients had it, on the monotonic clock, which is one
clock for every process on Linux.

Beside each figure it reports what the generator spent (its workers and
itself, in % of one core, and per update) and what the server did, and says
when the generator was the bottleneck: when it used nearly all the cores it
may run on, or took longer to read an update on every socket than the server
took to send it (the latency is then mostly the generator's).

    python -m bench.fleet --worker --dialect tally --port 8765 --clients 2000 --first 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.swarm import DIALECTS, Options, Swarm, cpu_seconds

NODE_CLIENTS = Path(__file__).resolve().parent / "peers" / "node" / "clients.js"
# The generator is the bottleneck when it used more than this share of the cores it may run on.
SATURATED = 0.85


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    clients: int

    async def ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        return await self.answer(timeout)

    async def answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"a worker exited ({await self._stderr()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode(errors="replace").strip()[-300:]


class Fleet:
    """Worker processes holding ``clients`` dashboards of one server (or spread over a cluster's)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @classmethod
    async def start(cls, swarm: Swarm, clients: int, options: Options, *, servers: tuple[int, ...] = (0,)) -> Fleet:
        """Start the workers (as many as asked, at least one per server) and wait until every client is synced."""
        kind = options.worker_kind if options.worker_kind != "node" or shutil.which("node") else "python"
        count = max(options.workers, len(servers))
        workers, first = [], swarm.next_index() + 1
        for w in range(count):
            share = clients // count + (w < clients % count)
            port = swarm.ports[servers[w % len(servers)]]
            common = ["--dialect", swarm.dialect.name, "--port", str(port), "--clients", str(share),
                      "--first", str(first), "--concurrency", "250"]  # fmt: skip
            if kind == "node":
                common += ["--readers", str(options.readers)]
            argv = (["node", str(NODE_CLIENTS), *common] if kind == "node"
                    else [sys.executable, "-m", "bench.fleet", "--worker", *common])  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=1 << 24,
            )
            workers.append(Worker(process, share))
            first += share
        fleet = cls(workers)
        ready = await asyncio.gather(*(w.answer(300) for w in workers), return_exceptions=True)
        if any(
            isinstance(r, BaseException) or r.get("ready") != w.clients for r, w in zip(ready, workers, strict=True)
        ):
            await fleet.stop()
            raise RuntimeError(f"the fleet did not connect: {ready}")
        return fleet

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers]

    async def collect(self, updates: int, timeout: float) -> list[float] | None:
        """When the last (timed) client of the fleet had each of the next ``updates`` updates; None if one was lost."""
        answers = await self._ask_all({"collect": updates, "timeout": timeout}, timeout)
        if not all(a.get("valid") for a in answers):
            return None
        arrivals = [a["arrivals"] for a in answers]
        if any(at is None for worker in arrivals for at in worker):
            return None
        return [max(worker[k] for worker in arrivals) for k in range(updates)]

    async def drained(self, updates: int, timeout: float) -> bool:
        """Whether every client of the fleet, once it read what was left, had ``updates`` updates in order."""
        return all(a.get("valid") for a in await self._ask_all({"drain": updates, "timeout": timeout}, timeout))

    async def _ask_all(self, command: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.ask(command, timeout + 30) for w in self.workers)))

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.process.returncode is None:
                worker.process.kill()
            await worker.process.wait()


class Meter:
    """CPU of the servers, Redis, and the generator (this process and its workers) over one stretch."""

    def __init__(self, options: Options, fleet: Fleet) -> None:
        self.options, self.fleet = options, fleet
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.start = time.monotonic()
        self.before = self._read()

    def _read(self) -> tuple[float, float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (cpu_seconds(*self.options.pids), cpu_seconds(self.options.redis_pid),
                own.ru_utime + own.ru_stime + cpu_seconds(*self.fleet.pids))  # fmt: skip

    def spent(self) -> tuple[float, tuple[float, float, float]]:
        """Seconds since the start, and the CPU seconds the servers, Redis and the generator spent in them."""
        after = self._read()
        return time.monotonic() - self.start, (after[0] - self.before[0], after[1] - self.before[1],
                                               after[2] - self.before[2])  # fmt: skip

    def result(self, deliveries: int, updates: int, rest: tuple[float, tuple[float, float, float]]) -> dict[str, Any]:
        """The figures; the costs per update and per delivery are less what each process spends at rest
        (``rest``: a quiet stretch just before, with its liveness sweeps, heartbeats and timers)."""
        elapsed, (server, redis, generator) = self.spent()
        gross = generator
        quiet, (server_rest, redis_rest, generator_rest) = rest
        server = max(0.0, server - server_rest / quiet * elapsed)
        redis = max(0.0, redis - redis_rest / quiet * elapsed)
        generator = max(0.0, generator - generator_rest / quiet * elapsed)
        # The generator is the bottleneck when it used nearly all its cores, or when it took longer to read an
        # update on every socket than the servers took to send it: the latency is then mostly its own.
        bound = gross / elapsed > SATURATED * self.cores or generator > server
        result = {"deliveries_per_s": deliveries / elapsed, "server_cpu_pct": server / elapsed * 100,
                  "gen_cpu_pct": gross / elapsed * 100, "generator_bound": float(bound),
                  "server_ms_per_update": server / updates * 1e3, "gen_ms_per_update": generator / updates * 1e3,
                  "server_cpu_us_per_delivery": server / deliveries * 1e6,
                  "server_cpu_us_per_update": server / updates * 1e6}  # fmt: skip
        if self.options.redis_pid:
            result["redis_cpu_us_per_delivery"] = redis / deliveries * 1e6
            result["redis_cpu_us_per_update"] = redis / updates * 1e6
        return result


async def fanout(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Fan-out latency at ``clients`` dashboards held by the fleet, one adder in this process; and CPU."""
    from bench.server_load import send_paced, spread

    return await paced(swarm, options, (0,), send_paced, spread)


async def scale(swarm: Swarm, options: Options) -> dict[str, Any]:
    """Fan-out over a cluster: the fleet's dashboards spread evenly over every server, the adder on the first."""
    from bench.server_load import send_paced, spread

    return await paced(swarm, options, tuple(range(len(swarm.ports))), send_paced, spread)


async def paced(
    swarm: Swarm, options: Options, servers: tuple[int, ...], send_paced: Any, spread: Any
) -> dict[str, Any]:
    """The fleet's clients on ``servers``; one adder on server 0 sends ``updates`` at ``rate`` a second."""
    try:
        fleet = await Fleet.start(swarm, options.clients, options, servers=servers)
    except RuntimeError as exc:
        return {"valid": False, "why": str(exc)}
    try:
        sender = await swarm.open(0, 0)
        if not await swarm.wait(swarm.synced, 60):
            return {"valid": False, "why": "the adder did not sync"}
        await asyncio.sleep(1.5)  # past the server's once-a-second count of who is online
        idle = Meter(options, fleet)
        await asyncio.sleep(2.0)
        rest = idle.spent()
        meter = Meter(options, fleet)
        sent = await send_paced(swarm, sender, options.rate, options.updates)
        arrivals = await fleet.collect(options.updates, 120)
        if arrivals is None:
            return {"valid": False, "why": "an update was lost or out of order"}
        latencies = [(at - then) * 1000 for at, then in zip(arrivals, sent, strict=True)]
        return {
            "valid": True,
            **spread(latencies),
            **meter.result(options.updates * options.clients, options.updates, rest),
        }
    finally:
        await fleet.stop()


async def worker(args: argparse.Namespace) -> None:
    """The Python worker: the same commands and answers as the Node one (see clients.js)."""
    swarm = Swarm(DIALECTS[args.dialect], (args.port,))
    swarm.timed = True
    swarm._opened = args.first
    await swarm.connect(args.clients, concurrency=args.concurrency)
    synced = await swarm.wait(swarm.synced, 120)
    print(json.dumps({"ready": len(swarm.clients) if synced else 0}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        if command.get("quit"):
            break
        # Every client reads as updates come: a drain is the same check as a collect.
        n = command["collect"] if "collect" in command else command["drain"]
        trackers = list(swarm.trackers.values())
        done = await swarm.wait(lambda: all(t.last is not None and t.base is not None and t.last - t.base >= n  # noqa: B023
                                            for t in trackers), command["timeout"], interval=0.02)  # noqa: B023  # fmt: skip
        arrivals = []
        for k in range(1, n + 1):
            times = [t.arrivals.get(t.base + k) for t in trackers if t.base is not None]
            arrivals.append(None if None in times or not times else max(at for at in times if at is not None))
        print(json.dumps({"valid": done and all(t.in_order for t in trackers), "arrivals": arrivals}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--dialect", choices=list(DIALECTS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=500)
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(worker(arguments))
