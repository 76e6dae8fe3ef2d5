"""Where a Tally server's CPU goes, by stage of an add: one scenario under py-spy, summarised.

    python -m bench.profile --scenario durable --peer tally --seconds 10
    python -m bench.profile --scenario redis_durable --peer tally-redis --baseline ../base/.venv/bin/python
    python -m bench.profile --files bench/results/profile-*.txt   # summarise samples taken before

py-spy samples the thread that holds the GIL (a thread waiting on fsync or a
queue is not counted), 200 times a second, as collapsed stacks. Each sample is
given to the stage of its deepest frame that a rule below names; samples with
no such frame are the event loop's own. The table gives each stage's share of
the samples and, from the server's CPU per add measured in the same run, an
estimate of its microseconds per add. py-spy is installed from PyPI.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

from bench import run
from bench.scenarios import SCENARIOS

# (stage, pattern over one frame "function (file:line)"): a sample belongs to the stage of the
# deepest frame that matches. Frames under one that matches (the json module under the protocol's
# decoder, hmac under the ledger's seal) belong to it.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (stage, re.compile(pattern))
    for stage, pattern in (
        ("receive: socket read, WebSocket frames, pacing",
         r"_read_ready|websockets/|server/connection\.py|Session\.spend"),
        ("decode and validate", r"server/protocol/decoding\.py"),
        ("submit (session to ledger queue)",
         r"DashboardSession\._handle |Session\.submit|Ledger\.submit|pace_in_flight"),
        ("commit (ledger, store, witness, seal)",
         r"server/(ledger|commit|state|view|witness|history|repair|cluster)\.py|server/store/|redis/|sqlite3"),
        ("publish (record to update)", r"server/publish\.py"),
        ("answer (ack built and queued)", r"DashboardSession\._answer"),
        ("encode (acks and updates)", r"server/protocol/encoding\.py"),
        ("fan-out write", r"server/fanout\.py|_SelectorSocketTransport\.write"),
        ("session loop (each frame awaited, counted, dispatched)", r"server/(session|handler)\.py"),
        ("metrics and logging", r"prometheus_client/|logging/|server/monitoring\.py|server/logs\.py"),
    )
)  # fmt: skip
LOOP = "event loop and other"


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, pattern in RULES:
            if pattern.search(frame):
                return stage
    return LOOP


def summarise(files: list[Path], us_per_add: float | None = None, top: int = 15) -> str:
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if not stack or not number.isdigit():
                continue
            frames = stack.split(";")
            stages[stage_of(frames)] += int(number)
            leaves[frames[-1]] += int(number)
    total = sum(stages.values()) or 1
    per_add = "" if us_per_add is None else " µs per add |"
    lines = [f"{total:,} samples" + ("" if us_per_add is None else f"; server CPU {us_per_add:.1f} µs per add"), "",
             f"| stage | share |{per_add}", "|---|---:|" + ("---:|" if per_add else "")]  # fmt: skip
    for stage, count in sorted(stages.items(), key=lambda item: -item[1]):
        share = count / total
        lines.append(f"| {stage} | {share:.1%} |" + ("" if us_per_add is None else f" {share * us_per_add:.1f} |"))
    lines += ["", f"Top {top} frames (the function on CPU):", "", "| share | frame |", "|---:|---|"]
    lines += [f"| {count / total:.1%} | `{frame}` |" for frame, count in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="durable", choices=[s for s in SCENARIOS if SCENARIOS[s].durable])
    parser.add_argument("--peer", default="tally", help="a Tally peer of bench.run (a baseline twin: key@baseline)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--baseline", metavar="PYTHON", help="the interpreter of the baseline checkout")
    parser.add_argument("--files", nargs="*", type=Path, help="summarise these samples instead of taking new ones")
    args = parser.parse_args(argv)
    if args.files:
        print(summarise(args.files))
        return 0
    scenario = SCENARIOS[args.scenario]
    key = args.peer.removesuffix(run.BASELINE)
    if key not in run.PEERS or run.PEERS[key].dialect != "tally":
        parser.error(f"--peer: one of {', '.join(k for k, p in run.PEERS.items() if p.dialect == 'tally')}")
    peer = run.PEERS[key]
    if args.peer.endswith(run.BASELINE):
        if not args.baseline:
            parser.error("a baseline peer needs --baseline")
        peer = run.baseline_twin(peer, args.baseline)
    flags = (*_without_value(scenario.flags, "--seconds"), "--seconds", str(args.seconds))
    out = run.ROOT / "bench" / "results" / f"profile-{args.scenario}-{args.peer}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    out.parent.mkdir(exist_ok=True)
    result = run.measure(peer, run.Case(scenario, args.clients, (args.peer,), flags), out)
    print(f"{args.scenario}, {peer.label}: {result}", file=sys.stderr)
    if not result.get("valid") or not out.exists():
        return 1
    print(summarise([out], result.get("server_cpu_us_per_add")))
    print(f"\nsamples in {out.relative_to(run.ROOT)}", file=sys.stderr)
    return 0


def _without_value(flags: tuple[str, ...], name: str) -> tuple[str, ...]:
    """``flags`` less ``name`` and the value after it."""
    kept: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == name:
            skip = True
        else:
            kept.append(flag)
    return tuple(kept)


if __name__ == "__main__":
    sys.exit(main())
