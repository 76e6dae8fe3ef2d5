"""The load generator: one scenario against one server, results as JSON on stdout.

Run by ``python -m bench`` in its own process, pinned to the other core from
the server's. Every client checks that it received every update, in order; a
run where any did not is reported invalid. Times come from the monotonic
clock, which on Linux is one clock for every process. The scenarios are in
bench.scenarios; the clients and what they check, in bench.swarm.

    python -m bench.loadgen --dialect tally --port 8765 --scenario fanout --clients 1000
    python -m bench.loadgen --dialect tally --port 8765,8766 --pid 11,12 --redis-pid 10 --scenario cluster_fanout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from typing import Any

from bench.scenarios import SCENARIOS
from bench.swarm import DIALECTS, Options, Swarm


async def main(args: argparse.Namespace) -> dict[str, Any]:
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        raise SystemExit(f"unknown scenario {args.scenario}")
    pids = tuple(int(pid) for pid in args.pid.split(","))
    options = Options(args.clients, args.rate, args.updates, args.seconds, args.window, pids, args.redis_pid,
                      args.churn, args.workers, args.worker_kind, args.readers)  # fmt: skip
    return await scenario.run(Swarm(DIALECTS[args.dialect], tuple(int(p) for p in args.port.split(","))), options)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialect", choices=list(DIALECTS), required=True)
    parser.add_argument("--port", required=True, help="the server's port; a cluster's, comma-separated")
    parser.add_argument("--pid", default="0", help="the server's pid; a cluster's, comma-separated")
    parser.add_argument("--redis-pid", type=int, default=0)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--churn", type=float, default=100.0, help="joins (and leaves) a second")
    parser.add_argument("--workers", type=int, default=2, help="client processes, for the scenarios with a fleet")
    parser.add_argument("--worker-kind", choices=["node", "python"], default="node")
    parser.add_argument("--readers", type=float, default=1.0, help="share of a fleet's dashboards timed (see fleet)")
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(main(arguments))
    json.dump(result, sys.stdout)
