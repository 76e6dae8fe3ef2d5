"""A newcomer's machine for install tests: an environment that knows nothing of the checkout under test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["new_venv", "newcomer_env"]


def newcomer_env(home: Path) -> dict[str, str]:
    """This process's environment without the test's virtual environment, PYTHONPATH or Tally's variables.

    The XDG directories stay this test's private ones (set by the autouse fixture); HOME is ``home``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not Path(p, "pytest").exists())
    env["HOME"] = str(home)
    return env


def new_venv(path: Path, env: dict[str, str], *install: str, cwd: Path | None = None) -> Path:
    """``python3 -m venv path``, then ``pip install`` of ``install``; returns the environment's bin directory."""
    subprocess.run(["python3", "-m", "venv", str(path)], env=env, check=True, timeout=120)
    if install:
        subprocess.run(
            [str(path / "bin" / "pip"), "install", "--quiet", *install],
            env=env,
            cwd=cwd,
            check=True,
            timeout=600,
            capture_output=True,
        )
    return path / "bin"
