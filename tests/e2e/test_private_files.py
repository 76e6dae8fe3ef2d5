"""What a dashboard writes on its user's disk is theirs alone, whatever the umask it was started with."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

from tests.e2e.conftest import StartTally
from tests.support import waiting
from tests.support.local import journals, tally_command
from tests.support.terminal import until_shown


def modes(root: Path, prefix: str) -> dict[str, int]:
    """The permission bits of ``root`` and of every directory (named with a final /) and file under it, sockets
    left out, by path under ``prefix``."""
    found = {f"{prefix}/": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
            name = f"{prefix}/{path.relative_to(root)}{'/' if stat.S_ISDIR(info.st_mode) else ''}"
            found[name] = stat.S_IMODE(info.st_mode)
    return found


async def test_what_the_dashboard_writes_is_private_whatever_the_umask(
    user: dict[str, str], start_tally: StartTally
) -> None:
    """Started with umask 022, a dashboard that starts its local server and types an add, then `tally add`, leave the
    server's log, the journal of pending adds (its session's secret), their locks, the scripts' session key and every
    directory made for them 0600 and 0700."""
    old = os.umask(0o022)
    try:
        terminal = start_tally("--name", "ann")  # the pty's child starts with this umask
        await until_shown(terminal, "● connected")
        terminal.type("+5\r")
        await waiting.until(lambda: any("adds" in journal for journal in journals(user)), what="a journal")
        script = await asyncio.to_thread(
            subprocess.run, [tally_command(), "add", "2"], env=user, capture_output=True, text=True, timeout=60
        )
    finally:
        os.umask(old)
    assert script.returncode == 0, script.stderr
    written = {**modes(Path(user["XDG_STATE_HOME"]) / "tally", "state"),
               **modes(Path(user["XDG_RUNTIME_DIR"]) / "tally", "run")}  # fmt: skip
    assert {"state/server.log", "state/pending/", "state/script.key", "run/spawn.lock"} <= written.keys(), written
    assert any(name.startswith("state/pending/") and name.endswith(".json") for name in written), written
    wrong = {name: f"{mode:o}" for name, mode in written.items() if mode != (0o700 if name.endswith("/") else 0o600)}
    assert not wrong, wrong
