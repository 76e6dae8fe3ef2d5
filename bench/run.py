"""`python -m bench`: Tally and its peers, scenario by scenario, interleaved in rounds.

Each round runs every scenario against every peer in a rotated order, so that
a noisy moment on the machine hurts all peers alike; ratios are taken within a
round and their median is reported. Servers (and redis-server, for the peers
on the Redis store) run pinned to CPU 0 and the load generator to CPU 1.
Results: a table on stdout, JSON and an SVG chart in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chart import line_chart
from bench.scenarios import SCENARIOS, Scenario

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "bench" / "peers" / "node"
PY = sys.executable
# Every client comes from 127.0.0.1: the per-connection and per-address limits are lifted (the
# per-connection bound on adds in flight, 100, is above any scenario's window). --live-presence
# keeps its default: past 300 people a room sends counts, not every join, as it would in use.
UNLIMITED = ["--rate", "1e9", "--burst", "1000000", "--address-rate", "1e9", "--address-burst", "1000000",
             "--connect-rate", "1e9", "--connect-burst", "1000000", "--max-connections", "20000",
             "--max-connections-per-address", "20000", "--log-level", "warning"]  # fmt: skip
# One redis-server per measurement, as durable as SQLite with synchronous=FULL: every write
# fsynced to the append-only file before it is answered.
REDIS = ("redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--dir", "{dir}", "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--protected-mode", "yes")  # fmt: skip


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    argv: tuple[str, ...]  # "{port}" and "{db}" are filled in
    dialect: str
    servers: int = 1  # a cluster: this many servers on one Redis
    redis: bool = False  # "{db}" is a redis-server started for the measurement


PEERS = {
    "raw": Peer("raw", "raw asyncio floor", (PY, "-m", "bench.peers.raw_floor", "{port}"), "counter"),
    "websockets": Peer("websockets", "websockets counter", (PY, "-m", "bench.peers.counter", "{port}"), "counter"),
    "node": Peer("node", "Node ws", ("node", str(NODE_DIR / "server.js"), "{port}"), "counter"),
    "tally": Peer(
        "tally", "Tally", (PY, "-m", "tally.server", "--port", "{port}", "--db", "{db}", *UNLIMITED), "tally"
    ),
    "tally-1commit": Peer(
        "tally-1commit", "Tally, one commit per add",
        (PY, "-m", "bench.peers.tally_one_commit", "--port", "{port}", "--db", "{db}", *UNLIMITED), "tally",
    ),
    "tally-redis": Peer(
        "tally-redis", "Tally, Redis store",
        (PY, "-m", "tally.server", "--port", "{port}", "--db", "{db}", "--redis-prefix", "bench:", *UNLIMITED), "tally",
        redis=True,
    ),
    "tally-cluster": Peer(
        "tally-cluster", "Tally, 2 servers on Redis",
        (PY, "-m", "tally.server", "--port", "{port}", "--db", "{db}", "--redis-prefix", "bench:", *UNLIMITED), "tally",
        servers=2, redis=True,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    clients: int
    peers: tuple[str, ...]
    flags: tuple[str, ...]


def cases(quick: bool) -> list[Case]:
    return [Case(scenario, clients, scenario.peers, scenario.flags_for(quick))
            for scenario in SCENARIOS.values() for clients in scenario.sizes(quick)]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(cpu: int) -> Any:
    def pin() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return pin


def start(label: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server (pinned to CPU 0) on a free port; return once it accepts connections."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               preexec_fn=pinned(0))  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{label} exited at once") from None
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"{label} did not start")


def measure(peer: Peer, case: Case) -> dict[str, Any]:
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Servers on Redis remember the last seq they saw in their state directory: a fresh one each time.
        env = {**os.environ, "XDG_STATE_HOME": tmp}
        try:
            redis_pid = 0
            if peer.redis:
                redis, redis_port = start("redis-server", [arg.replace("{dir}", tmp) for arg in REDIS])
                processes.append(redis)
                redis_pid, db = redis.pid, f"redis://127.0.0.1:{redis_port}/0"
            else:
                db = str(Path(tmp) / "bench.db") if case.scenario.durable else ":memory:"
            ports = []
            for _ in range(peer.servers):
                server, port = start(peer.label, [arg.replace("{db}", db) for arg in peer.argv], env)
                processes.append(server)
                ports.append(port)
            servers = processes[-peer.servers :]
            argv = [PY, "-m", "bench.loadgen", "--dialect", peer.dialect, "--port", ",".join(map(str, ports)),
                    "--pid", ",".join(str(p.pid) for p in servers), "--redis-pid", str(redis_pid),
                    "--scenario", case.scenario.name, "--clients", str(case.clients), *case.flags]  # fmt: skip
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=pinned(1))
            if done.returncode != 0:
                return {"valid": False, "why": done.stderr.strip().splitlines()[-1:] or "loadgen failed"}
            result: dict[str, Any] = json.loads(done.stdout)
            return result
        except subprocess.TimeoutExpired:
            return {"valid": False, "why": "timed out"}
        except RuntimeError as exc:
            return {"valid": False, "why": str(exc)}
        finally:
            for process in reversed(processes):
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--only", nargs="*", help="scenarios to run (default: all)")
    args = parser.parse_args(argv)
    if shutil.which("node") and not (NODE_DIR / "node_modules" / "ws").exists():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    selected = [c for c in cases(args.quick) if not args.only or c.scenario.name in args.only]
    if not shutil.which("node"):
        print("node is not installed: the Node ws peer is left out", file=sys.stderr)
        selected = [Case(c.scenario, c.clients, tuple(p for p in c.peers if p != "node"), c.flags)
                    for c in selected]  # fmt: skip
    if not shutil.which("redis-server"):
        print("redis-server is not installed: the peers on Redis are left out", file=sys.stderr)
        selected = [Case(c.scenario, c.clients, tuple(p for p in c.peers if not PEERS[p].redis), c.flags)
                    for c in selected]  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_index in range(args.rounds):
        for case in selected:
            shift = round_index % len(case.peers)
            for key in case.peers[shift:] + case.peers[:shift]:
                label = f"{case.scenario.name}/{case.clients}/{key}"
                result = measure(PEERS[key], case)
                runs.setdefault(label, []).append(result)
                print(f"round {round_index + 1}: {label}: {result}", file=sys.stderr, flush=True)
    summary = summarise(selected, runs)
    print(table(summary))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform}
    (out / f"{stamp}.json").write_text(json.dumps({"machine": machine, "summary": summary, "runs": runs}, indent=1))
    saved = [f"{stamp}.json"]
    for scenario in SCENARIOS.values():
        if scenario.chart is not None:
            rows = [r for r in summary if r["scenario"] == scenario.name and r["metric"] == scenario.chart.metric]
            saved.append(f"{stamp}-{scenario.name}.svg")
            (out / saved[-1]).write_text(line_chart(rows, scenario.chart.title, PEERS))
    print(f"\nsaved bench/results/{' and '.join(saved)}", file=sys.stderr)
    return 0


def summarise(selected: list[Case], runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for case in selected:
        for metric, lower_is_better in case.scenario.metrics:
            row: dict[str, Any] = {"scenario": case.scenario.name, "clients": case.clients, "metric": metric,
                                   "lower_is_better": lower_is_better, "values": {}, "ratios": {}}  # fmt: skip
            row["subject"] = ours = case.scenario.subject if case.scenario.subject in case.peers else case.peers[-1]
            per_round: dict[str, list[float | None]] = {}
            for key in case.peers:
                results = runs.get(f"{case.scenario.name}/{case.clients}/{key}", [])
                per_round[key] = [r.get(metric) if r.get("valid") else None for r in results]
                valid = [v for v in per_round[key] if v is not None]
                if not valid and any(r.get("valid") for r in results):
                    continue  # a metric this peer does not have (Redis's CPU, without Redis)
                row["values"][key] = statistics.median(valid) if valid else None
                row[f"invalid_{key}"] = len(per_round[key]) - len(valid)
            for key in case.peers:
                if key == ours:
                    continue
                ratios = [t / p for t, p in zip(per_round[ours], per_round[key], strict=False)
                          if t is not None and p not in (None, 0)]  # fmt: skip
                row["ratios"][key] = statistics.median(ratios) if ratios else None
            rows.append(row)
    return rows


def figure(value: float) -> str:
    """Four significant digits, with thousands separators and no exponent."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def table(summary: list[dict[str, Any]]) -> str:
    shown = [key for key in PEERS if any(key in row["values"] for row in summary)]
    labels = " | ".join(PEERS[key].label for key in shown)
    lines = [f"| scenario | clients | metric | {labels} | ratio (median of rounds) |",
             "|---|---:|---|" + "---:|" * len(shown) + "---|"]  # fmt: skip
    for row in summary:
        cells = []
        for key in shown:
            value = row["values"].get(key)
            invalid = row.get(f"invalid_{key}", 0)
            cells.append("" if key not in row["values"] else ("invalid" if value is None else figure(value))
                         + (f" ({invalid} invalid)" if invalid and value is not None else ""))  # fmt: skip
        subject = PEERS[row["subject"]].label
        ratios = ", ".join(f"{subject} / {PEERS[k].label} {v:.2f}x" for k, v in row["ratios"].items() if v is not None)
        lines.append(
            f"| {row['scenario']} | {row['clients']:,} | {row['metric']} | " + " | ".join(cells) + f" | {ratios} |"
        )
    return "\n".join(lines)
