"""The examples in docs/ run as written: the cron script on a quiet day, a busy one and a lost answer; a Redis cluster.

Each example is read from its page, not copied here, so a change to the page is
what is tested. Only what cannot run on a test machine is replaced: the paths,
ports, host names and dates, the system logger, the pauses between tries, and the interactive dashboard.
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

from tally.server.protocol import Update
from tests.docs.markdown import REPOSITORY, code_blocks
from tests.support.local import tally_command
from tests.support.peers import Peer
from tests.support.servers import ServerProcess, serving

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


SCRIPT = "/opt/tally/add-signups"


def cron_script(directory: Path, url: str, day: str) -> Path:
    """docs/cli.md's cron script, with this machine's paths, a logger that prints and pauses the test ends.

    Written to ``directory``; its crontab line must run it. The day is ``day`` (``date +%F`` in the page), and
    each pause between tries prints ``pausing`` and waits for a line on the fifo ``directory/go``.
    """
    cron = next(line for line in block_with("cli.md", "0 18 * * *").splitlines() if line.startswith("0 18"))
    assert cron.split(None, 5)[5] == SCRIPT, "the crontab line no longer runs the script"
    script = block_with("cli.md", f"# {SCRIPT}:")
    assert script.startswith("#!/bin/sh\n")
    for written, here in (
        ("/var/log/signups.today", str(directory / "signups.today")),
        ("/opt/tally/bin/tally", tally_command()),
        ("wss://tally.example:8765", url),
        ("/home/ops/.tally-token", str(directory / "token")),
        ("logger -t tally", "printf 'logged: %s\\n'"),
        ("$(date +%F)", day),
        ('sleep "$pause"', f"echo pausing; read _ < {directory / 'go'}"),
    ):
        assert written in script, f"the cron script no longer holds {written}"
        script = script.replace(written, here)
    path = directory / f"add-signups-{day}"
    path.write_text(script)
    return path


async def run_cron(script: Path) -> tuple[int, str]:
    """Run the script as cron would; its exit status and everything it printed."""
    process = await start_cron(script)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return await process.wait(), output.decode()


async def start_cron(script: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "/bin/sh", str(script), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env()
    )


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
    """The cron script adds each day's count once (rerun or not), nothing on a day with none, and logs a failure."""
    signups, token = tmp_path / "signups.today", tmp_path / "token"
    token.write_text(TOKEN + "\n")
    async with serving(token=TOKEN) as server:
        quiet, busy = cron_script(tmp_path, server.url, "day-1"), cron_script(tmp_path, server.url, "day-2")
        signups.write_text("")
        assert await run_cron(quiet) == (0, "")
        assert await total(server.url) == 0
        signups.write_text("ann\nbo\ncy\n")
        assert await run_cron(busy) == (0, "3\n")
        status, output = await run_cron(busy)  # run again the same day: counted once
        assert (status, output.splitlines()[-1]) == (0, "3"), output
        assert "already counted" in output
        assert await total(server.url) == 3
        token.write_text("a wrong token\n")
        status, output = await run_cron(cron_script(tmp_path, server.url, "day-3"))
        assert (status, output.splitlines()[-1]) == (5, "logged: could not add today's sign-ups: exit status 5")
        signups.unlink()
        status, output = await run_cron(busy)
        assert status != 0
        assert output.splitlines()[-1].startswith("logged: could not add today's sign-ups: exit status ")
        assert await total(server.url) == 3


async def test_the_cron_example_retries_an_add_whose_answer_was_lost_and_counts_it_once(tmp_path: Path) -> None:
    """The server stores the add and dies before its ack: the script pauses, tries again with its op id, +4 once."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "signups.today").write_text("ann\nbo\ncy\ndee\n")
    os.mkfifo(tmp_path / "go")
    db = tmp_path / "tally.db"
    with ServerProcess(db, "--token", TOKEN, module="tests.support.ackless_server") as ackless:
        url = ackless.start()
        script = cron_script(tmp_path, url, "day-1")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with await Peer.join(url, "watcher", additional_headers=headers) as watcher:
            cron = await start_cron(script)
            assert (await watcher.next_of(Update, timeout=30)).amount == 4  # stored; its ack never leaves
            ackless.kill()
    assert cron.stdout is not None
    first_try: list[str] = []
    while "pausing\n" not in first_try:  # what the first try said (a dying server may be seen first), then the pause
        first_try.append((await asyncio.wait_for(cron.stdout.readline(), 60)).decode())
        assert first_try[-1], first_try
    assert "may or may not have counted" in first_try[-2], first_try
    with ServerProcess(db, "--token", TOKEN) as server:
        server.port = ackless.port
        assert server.start() == url
        await asyncio.to_thread((tmp_path / "go").write_text, "go on\n")  # the pause is over
        output, _ = await asyncio.wait_for(cron.communicate(), timeout=60)
        assert (await cron.wait(), output.decode().splitlines()[-1]) == (0, "4"), output
        assert await total(url) == 4


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
