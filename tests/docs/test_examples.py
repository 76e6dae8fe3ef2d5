"""The examples in docs/ run as written: the cron line on a quiet day and a busy one, the Redis cluster on one machine.

Each example is read from its page, not copied here, so a change to the page is
what is tested. Only what cannot run on a test machine is replaced: the paths,
ports and host names, the system logger, and the interactive dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
from pathlib import Path

from tests.docs.markdown import REPOSITORY, code_blocks
from tests.support.local import tally_command
from tests.support.servers import serving

TOKEN = "the-shared-token"
# Waits until a port on 127.0.0.1 accepts a connection (bash's /dev/tcp), at most 15 s.
READY = (
    'ready() { for _ in $(seq 300); do (: >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; '
    'echo "port $1 never opened" >&2; exit 9; }'
)


def block_with(page: str, marker: str) -> str:
    """The one fenced block of ``docs/<page>`` that contains ``marker``."""
    found = [body for _, body in code_blocks((REPOSITORY / "docs" / page).read_text()) if marker in body]
    assert len(found) == 1, f"docs/{page}: {len(found)} blocks hold {marker!r}"
    return found[0]


def cron_command(signups: Path, token: Path, url: str) -> str:
    """The cron line of docs/cli.md without its schedule, with this machine's paths and a logger that prints."""
    line = next(line for line in block_with("cli.md", "0 18 * * *").splitlines() if line.startswith("0 18"))
    command = line.split(None, 5)[5]
    for written, here in (
        ("/var/log/signups.today", str(signups)),
        ("/opt/tally/bin/tally", tally_command()),
        ("wss://tally.example:8765", url),
        ("/home/ops/.tally-token", str(token)),
        ("logger -t tally", "printf 'logged: %s\\n'"),
    ):
        assert written in command, f"the cron example no longer holds {written}"
        command = command.replace(written, here)
    return command


async def run_cron(command: str) -> tuple[int, str]:
    """Run the line as cron would (``/bin/sh -c``); its exit status and everything it printed."""
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env()
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return await process.wait(), output.decode()


async def total(url: str) -> int:
    process = await asyncio.create_subprocess_exec(
        tally_command(), "status", "--json", "--url", url, "--token", TOKEN, stdout=subprocess.PIPE, env=_env()
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    value: int = json.loads(output)["total"]
    return value


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TALLY_")}
    env["PYTHONPATH"] = str(REPOSITORY)
    return env


async def test_the_cron_example_adds_the_days_signups_and_nothing_on_a_quiet_day(tmp_path: Path) -> None:
    """The cron line adds each day's count, exits 0 with nothing added on a day with none, and logs a failure."""
    signups, token = tmp_path / "signups.today", tmp_path / "token"
    token.write_text(TOKEN + "\n")
    async with serving(token=TOKEN) as server:
        signups.write_text("")
        assert await run_cron(cron_command(signups, token, server.url)) == (0, "")
        assert await total(server.url) == 0
        signups.write_text("ann\nbo\ncy\n")
        assert await run_cron(cron_command(signups, token, server.url)) == (0, "3\n")
        assert await total(server.url) == 3
        token.write_text("a wrong token\n")
        status, output = await run_cron(cron_command(signups, token, server.url))
        assert (status, output.splitlines()[-1]) == (0, "logged: could not add today's sign-ups: exit status 5")
        signups.unlink()
        status, output = await run_cron(cron_command(signups, token, server.url))
        assert output.splitlines()[-1].startswith("logged: could not add today's sign-ups: exit status ")
        assert await total(server.url) == 3


def redis_example(directory: Path) -> str:
    """docs/operations.md's Redis cluster and how to stop it, as one bash script for a machine with no person at it.

    Ports are free ones, the Redis directory is under ``directory``; each background start is followed by a wait
    for its port (a person types slower than a script); the interactive dashboard is replaced by an add through
    one server and a status through the other.
    """
    redis_port, first, second = free_ports(3)
    start = block_with("operations.md", "redis-server --port")
    stop = block_with("operations.md", "kill $one $two")
    script = ["set -euo pipefail", READY]
    for line in start.splitlines():
        command = line.split("#")[0].strip()
        command = command.replace("~/tally-redis", shlex.quote(str(directory / "tally-redis")))
        command = command.replace("6390", str(redis_port)).replace("8765", str(first)).replace("8766", str(second))
        if command.startswith("pip install"):
            continue  # this environment has Redis's client already
        if command.startswith("tally --url"):
            command = f"tally add 5 --url ws://127.0.0.1:{first} && tally status --json --url ws://127.0.0.1:{second}"
        script.append(command)
        if command.startswith("redis-server"):
            script.append(f"ready {redis_port}")
        elif command.startswith("tally-server --port"):
            script.append(f"ready {first if f'--port {first}' in command else second}")
    script.extend(line.split("#")[0].strip() for line in stop.splitlines())
    return "\n".join(script) + "\n"


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (each probe is held open until all are found)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def test_the_redis_example_runs_and_stops_cleanly(tmp_path: Path) -> None:
    """Redis and two servers start as written, share one total, stop when told, and leave the directory clean."""
    here = tmp_path / "working-directory"
    here.mkdir()
    env = {**_env(), "PATH": f"{Path(tally_command()).parent}{os.pathsep}{os.environ['PATH']}"}
    output, errors = tmp_path / "stdout", tmp_path / "stderr"
    with output.open("w") as out, errors.open("w") as err:
        # A session of its own: whatever the script leaves running (if it fails half way) is ended with it.
        script = subprocess.Popen(
            ["bash", "-c", redis_example(tmp_path)], cwd=here, env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            exit_status = script.wait(timeout=50)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(script.pid, signal.SIGKILL)
    assert exit_status == 0, errors.read_text()
    lines = output.read_text().splitlines()  # Redis logs to standard output too
    assert "5" in lines  # the add through the first server
    status = next(line for line in lines if line.startswith("{"))
    assert json.loads(status)["total"] == 5  # read through the other server
    assert list(here.iterdir()) == []  # no appendonlydir/ or dump.rdb where the person stood
    assert (tmp_path / "tally-redis" / "appendonlydir").is_dir()
