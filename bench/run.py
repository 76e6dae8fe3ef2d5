"""`python -m bench`: Tally and its peers, scenario by scenario, interleaved in rounds.

Each round runs every scenario against every peer in a rotated order, so that
a noisy moment on the machine hurts all peers alike; ratios are taken within a
round and their median is reported. Servers (and redis-server, for the peers
on the Redis store) run pinned to CPU 0 and the load generator to the others.
Results: a table on stdout, JSON and an SVG chart in bench/results/.

``--baseline PYTHON`` adds Tally as another checkout serves it (say, a worktree
of an earlier commit with its own virtual environment; ``python -m
bench.baseline`` makes one) beside Tally now, to the scenarios that name a
baseline twin: both are measured in the same rounds, alternating, and the
ratio column divides now by the baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
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
    redis: bool = False  # "{db}" is a redis-server started for the measurement (and a ledger created in it)
    needs: str = ""  # a module the peer imports that Tally does not depend on: left out where it is missing

    @property
    def init(self) -> list[str]:
        """The command that creates the ledger in a fresh Redis, with this peer's own interpreter."""
        return [self.argv[0], "-m", "tally.server", "init", "--db", "{db}", "--redis-prefix", "bench:"]


BASELINE = "@baseline"  # a peer's key with this suffix: the same peer, served by the --baseline checkout


def baseline_twin(peer: Peer, python: str) -> Peer:
    """``peer`` served by another checkout's interpreter: Tally at the baseline."""
    argv = (python, *peer.argv[1:]) if peer.argv[0] == PY else peer.argv
    return Peer(peer.key + BASELINE, peer.label + " at the baseline", argv, peer.dialect, peer.servers, peer.redis)


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
    "tally-uvloop": Peer(
        "tally-uvloop", "Tally on uvloop",
        (PY, "-m", "bench.peers.tally_uvloop", "--port", "{port}", "--db", "{db}", *UNLIMITED), "tally", needs="uvloop",
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


CPUS = os.cpu_count() or 1


def server_cpus(servers: int) -> list[int]:
    """The CPU of each server, then Redis's: one each where the machine also leaves two for the load
    generator; else all on CPU 0 (on two cores, servers and Redis on one, the generator on the other)."""
    return list(range(servers + 1)) if servers + 3 <= CPUS else [0] * (servers + 1)


def generator_cpus(servers: int = 1) -> tuple[int, ...]:
    """The load generator (and every process it starts) runs on every CPU the servers do not."""
    taken = set(server_cpus(servers))
    return tuple(cpu for cpu in range(CPUS) if cpu not in taken) or (0,)


def pinned(*cpus: int) -> Any:
    """A preexec_fn: run on ``cpus`` only, with the file-descriptor limit raised to the hard limit."""

    def pin() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, set(cpus))
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return pin


def start(label: str, argv: list[str], env: dict[str, str] | None = None, cpu: int = 0
          ) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """Start a server (pinned to ``cpu``) on a free port; return once it accepts connections."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               preexec_fn=pinned(cpu))  # fmt: skip
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


def profiled(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (on the load generator's CPUs) until interrupted, as collapsed stacks."""
    # --gil: only the thread holding the GIL, so a thread waiting on fsync or a queue is not counted.
    argv = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--gil", "--nonblocking", "--format", "raw",
            "--output", str(out)]  # fmt: skip
    sampler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=pinned(*generator_cpus()))  # fmt: skip
    time.sleep(0.5)  # attached before the load starts
    return sampler


def measure(peer: Peer, case: Case, profile: Path | None = None) -> dict[str, Any]:
    """One measurement; with ``profile``, py-spy samples the (first) server meanwhile into that file."""
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Servers on Redis remember the last seq they saw in their state directory: a fresh one each time.
        env = {**os.environ, "XDG_STATE_HOME": tmp, **dict(case.scenario.peer_env)}
        try:
            redis_pid = 0
            if peer.redis:
                redis, redis_port = start("redis-server", [arg.replace("{dir}", tmp) for arg in REDIS],
                                          cpu=server_cpus(peer.servers)[-1])  # fmt: skip
                processes.append(redis)
                redis_pid, db = redis.pid, f"redis://127.0.0.1:{redis_port}/0"
                created = subprocess.run([arg.replace("{db}", db) for arg in peer.init], cwd=ROOT, env=env,
                                         capture_output=True, text=True, timeout=60)  # fmt: skip
                if created.returncode != 0:
                    return {"valid": False, "why": f"init failed: {created.stderr.strip()[-200:]}"}
            else:
                db = str(Path(tmp) / "bench.db") if case.scenario.durable else ":memory:"
            ports = []
            for index in range(peer.servers):
                argv = [arg.replace("{db}", db) for arg in peer.argv]
                server, port = start(peer.label, argv, env, server_cpus(peer.servers)[index])
                processes.append(server)
                ports.append(port)
            servers = processes[-peer.servers :]
            argv = [PY, "-m", "bench.loadgen", "--dialect", peer.dialect, "--port", ",".join(map(str, ports)),
                    "--pid", ",".join(str(p.pid) for p in servers), "--redis-pid", str(redis_pid),
                    "--scenario", case.scenario.name, "--clients", str(case.clients), *case.flags]  # fmt: skip
            sampler = None if profile is None else profiled(servers[0].pid, profile)
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300,
                                  preexec_fn=pinned(*generator_cpus(peer.servers)))  # fmt: skip
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
                sampler.wait(60)
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


def runnable(selected: list[Case]) -> list[Case]:
    """The cases, less the peers this machine cannot run (no node, no redis-server, a module missing)."""
    missing = {key for key, peer in PEERS.items() if peer.needs and importlib.util.find_spec(peer.needs) is None}
    for key in missing:
        print(f"{PEERS[key].needs} is not installed: {PEERS[key].label} is left out", file=sys.stderr)
    if not shutil.which("node"):
        print("node is not installed: the Node ws peer is left out", file=sys.stderr)
        missing.add("node")
    if not shutil.which("redis-server"):
        print("redis-server is not installed: the peers on Redis are left out", file=sys.stderr)
        missing |= {key for key, peer in PEERS.items() if peer.redis}
    return [Case(c.scenario, c.clients, tuple(p for p in c.peers if p not in missing), c.flags) for c in selected]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--only", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="an interpreter whose tally.server is the baseline (see python -m bench.baseline)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample each Tally server with py-spy into DIR (collapsed stacks; slows it a little)",
    )
    args = parser.parse_args(argv)
    if shutil.which("node") and not (NODE_DIR / "node_modules" / "ws").exists():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    selected = runnable([c for c in cases(args.quick) if not args.only or c.scenario.name in args.only])
    if args.baseline:
        selected = with_baseline(selected, args.baseline)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_index in range(args.rounds):
        for case in selected:
            shift = round_index % len(case.peers)
            for key in case.peers[shift:] + case.peers[:shift]:
                label = f"{case.scenario.name}/{case.clients}/{key}"
                sample = None
                if args.profile and PEERS[key].dialect == "tally":
                    sample = args.profile / f"{label.replace('/', '-')}-{round_index + 1}.txt"
                result = measure(PEERS[key], case, sample)
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
            if not rows:
                continue
            saved.append(f"{stamp}-{scenario.name}.svg")
            (out / saved[-1]).write_text(line_chart(rows, scenario.chart.title, PEERS))
    print(f"\nsaved bench/results/{' and '.join(saved)}", file=sys.stderr)
    return 0


def with_baseline(selected: list[Case], python: str) -> list[Case]:
    """The cases, each with the baseline twins its scenario names measured beside the peers."""
    for case in selected:
        for key in case.scenario.twins:
            PEERS[key + BASELINE] = baseline_twin(PEERS[key], python)
    return [Case(c.scenario, c.clients, c.peers + tuple(k + BASELINE for k in c.scenario.twins), c.flags)
            for c in selected]  # fmt: skip


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
