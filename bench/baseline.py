"""Make a baseline peer: a git worktree of an earlier commit, with its own virtual environment.

    python -m bench.baseline main ../tally-baseline
    python -m bench --baseline ../tally-baseline/.venv/bin/python --only durable redis_durable

Prints the interpreter to pass to ``python -m bench --baseline``. A target
that a benchmark sets as a ratio against an earlier commit is then measured
in one run, both servers in the same rounds, whatever the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(ref: str, where: Path) -> Path:
    """The worktree of ``ref`` at ``where`` (made if missing) and its venv; returns the venv's interpreter."""
    if not where.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True)
    python = where / ".venv" / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where / ".venv")], check=True)
        # The Redis extra: the baseline serves the Redis store too.
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{where}[redis]"], check=True)
    return python


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the commit (or branch) to measure against")
    parser.add_argument("where", type=Path, help="where its worktree goes")
    args = parser.parse_args()
    print(make(args.ref, args.where.resolve()))
