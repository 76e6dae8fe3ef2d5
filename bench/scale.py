"""N Tally servers on one Redis, M dashboards each: fan-out, deliveries a second, and CPU per delivery.

    python -m bench.scale --servers 2 --dashboards 1000            # this 2-core machine
    python -m bench.scale --servers 8 --dashboards 12500 --workers 16 --rate 2   # 100,000 on a big one

One dashboard on the first server adds ``--rate`` a second; the dashboards,
held by a fleet of client processes (bench.fleet), are spread evenly over the
servers. Reported, as medians of ``--rounds``: how long until every dashboard
had each update (p50, p99), deliveries a second, CPU per delivery and per
update for the servers (all together) and for Redis, and the load
generator's CPU (and whether it, not the servers, was the bottleneck). Where
the machine has a CPU for each server, one for Redis and two to spare, each
gets its own; otherwise servers and Redis share CPU 0 and the generator has
the rest. From the measured costs it says what one server core would carry.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from bench import run
from bench.scenarios import SCENARIOS

METRICS = [metric for metric, _ in SCENARIOS["scale"].metrics]


def predict(result: dict[str, float], dashboards: int) -> str:
    """What the measured costs say one server core can carry at ``dashboards`` dashboards a server."""
    per_delivery = result.get("server_cpu_us_per_delivery")
    if not per_delivery:
        return ""
    # Each update costs a server its deliveries; the rest (committing it, Redis's stream) is apart.
    rate = 1e6 / (per_delivery * dashboards)
    return (f"At {dashboards:,} dashboards a server and {per_delivery:.1f} µs of server CPU a delivery, "
            f"one server core delivers at most {rate:,.1f} updates a second to all of them "
            f"({rate * dashboards:,.0f} deliveries).")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--dashboards", type=int, default=1000, help="dashboards on each server")
    parser.add_argument("--rate", type=float, default=5.0, help="adds a second (default 5)")
    parser.add_argument("--updates", type=int, default=60, help="adds in all (default 60)")
    parser.add_argument("--workers", type=int, default=0, help="client processes (default: one per server)")
    parser.add_argument("--worker-kind", choices=["node", "python"], default="node")
    parser.add_argument(
        "--readers",
        type=float,
        default=1.0,
        help="share of the dashboards timed as updates come; the rest read every 5 s (see bench.fleet)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    base = run.PEERS["tally-cluster"]
    peer = run.Peer("tally-scale", f"Tally, {args.servers} servers on Redis", base.argv, base.dialect,
                    servers=args.servers, redis=True)  # fmt: skip
    flags = ("--rate", str(args.rate), "--updates", str(args.updates), "--workers", str(args.workers or args.servers),
             "--worker-kind", args.worker_kind, "--readers", str(args.readers))  # fmt: skip
    case = run.Case(SCENARIOS["scale"], args.servers * args.dashboards, (peer.key,), flags)
    results: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        result = run.measure(peer, case)
        print(f"round {round_index + 1}: {result}", file=sys.stderr, flush=True)
        results.append(result)
    valid = [r for r in results if r.get("valid")]
    if not valid:
        print("no valid round", file=sys.stderr)
        return 1
    medians = {m: statistics.median(r[m] for r in valid) for m in METRICS if all(m in r for r in valid)}
    print(f"{args.servers} servers on one Redis, {args.dashboards:,} dashboards each, {args.rate:g} adds a second "
          f"({len(valid)} of {len(results)} rounds valid; medians)\n")  # fmt: skip
    print("| metric | value |\n|---|---:|")
    for metric, value in medians.items():
        print(f"| {metric} | {run.figure(value)} |")
    print("\n" + predict(medians, args.dashboards))
    out = run.ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}-scale.json").write_text(json.dumps({"args": vars(args), "medians": medians, "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
