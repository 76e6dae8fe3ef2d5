"""The README's quick start, run as a newcomer would: a fresh clone, a new virtual environment, the command as is."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.docs.markdown import REPOSITORY, code_blocks
from tests.support.local import argv_of, kill_pids, server_pids
from tests.support.newcomer import newcomer_env

OPEN = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/tally"
TEST = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def readme_commands() -> list[str]:
    return [body.strip() for info, body in code_blocks((REPOSITORY / "README.md").read_text()) if info == "console"]


def test_the_quick_start_commands_are_the_ones_ci_runs() -> None:
    """The README holds both quick-start commands verbatim, and .ci/run runs the test command's `python -m pytest`."""
    commands = readme_commands()
    assert OPEN in commands
    assert TEST in commands
    ci = (REPOSITORY / ".ci" / "run").read_text().splitlines()
    assert "pip install --quiet -e '.[test]'" in ci
    assert "python -m pytest" in ci


@pytest.mark.slow
@pytest.mark.timeout(600)  # installing into a new environment takes some 30 s, more on a busy machine
def test_the_quick_start_works_in_a_fresh_clone(tmp_path: Path) -> None:
    """A clone of the committed tree installs by the README's command; its `tally` reaches its own local server."""
    clone = tmp_path / "tally"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True, timeout=60)
    env = newcomer_env(tmp_path)
    install, _, run = OPEN.rpartition(" && ")
    subprocess.run(install, shell=True, cwd=clone, env=env, check=True, timeout=300, capture_output=True)
    tally = shlex.split(run)
    help_text = subprocess.run([*tally, "--help"], cwd=clone, env=env, check=True, capture_output=True, text=True)
    assert "tally add [--op-id ID]" in help_text.stdout  # the usage lines of the commands for scripts
    # The dashboard needs a terminal; `tally status` takes the same path to the same local server without one.
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    try:
        status = subprocess.run(
            [*tally, "status", "--json"], cwd=clone, env=env, check=True, capture_output=True, text=True, timeout=60
        )
        assert json.loads(status.stdout)["total"] == 0
        (server,) = server_pids(str(runtime))
        python = argv_of(server)[0]
        assert python.startswith(str(clone / ".venv" / "bin")), python  # the clone's own environment, not ours
    finally:
        kill_pids(server_pids(str(runtime)))
