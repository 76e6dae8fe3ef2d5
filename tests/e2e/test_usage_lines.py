"""Every usage line that `tally --help`, its commands' `--help` and `tally-server --help` print, run as printed.

Each line is read from the help itself (so a line added to a help is run too),
with every optional part included and each placeholder given a real value; a
group of alternatives (``[--token TOKEN | --token-file PATH]``) is run once per
alternative. ``-h`` and ``--version`` inside a line are left out: they end a run
before anything else is read (``--version`` has its own line). Lines that need
a server get real ones: a token-protected ``tally-server`` on SQLite for the
client's lines (``$TALLY_URL``, ``$TALLY_TOKEN``), a real Redis for the
server's. Each run must do its job and exit 0: the dashboard is drawn in a real
terminal and quit, `watch` prints an add, `web` serves its page, the server
stores an add through its TLS Unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from itertools import count
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import unix_connect
from websockets.typing import Subprotocol

from tally.server.limits import Limits
from tally.server.protocol import SUBPROTOCOL_V2, Ack, Welcome
from tally.tui.web_tabs import TabLimits
from tests.support.local import free_port, tally_command, user_env
from tests.support.peers import Peer
from tests.support.redis_server import RedisServer
from tests.support.servers import ServerProcess
from tests.support.terminal import Terminal, until_shown
from tests.support.waiting import until

HELPS = [
    ("tally", "--help"),
    ("tally", "add", "--help"),
    ("tally", "watch", "--help"),
    ("tally", "status", "--help"),
    ("tally", "web", "--help"),
    ("tally-server", "--help"),
]
TOKEN = "usage-lines-token"
PROGRAMS = ("tally", "tally-server")
# Options that end a run before anything else is read: each has a line of its own, or printed the help.
ENDING = ("-h", "--version")
# A group: [optional part], a required option with its value (--db URL), or one word.
_GROUP = re.compile(r"\[[^\]]*\]|-\S+ (?:[A-Z][A-Z0-9_-]*|\{[^}]*\})(?=\s|$)|\S+")
_METAVAR = re.compile(r"[A-Z][A-Z0-9_-]*")


def program(name: str) -> str:
    return str(Path(tally_command()).with_name(name))


def usage_lines(help_text: str) -> list[str]:
    """The lines of the usage block (up to the first blank line), each joined across its wrapped parts."""
    block = help_text.split("\n\n", 1)[0]
    assert block.startswith("usage: "), help_text
    lines: list[str] = []
    for part in block.removeprefix("usage: ").splitlines():
        words = part.split()
        if words and words[0] in PROGRAMS:
            lines.append(" ".join(words))
        else:
            lines[-1] += " " + " ".join(words)
    return lines


TABS = TabLimits()  # tally web's limits, at their defaults


@dataclasses.dataclass
class World:
    """Everything a usage line's placeholders may stand for on this machine."""

    tmp: Path
    url: str = ""  # the token-protected server the client's lines use
    sqlite: Path = Path()
    redis: str = ""
    prefix: str = ""
    web_port: int = 0
    ops: Iterator[int] = dataclasses.field(default_factory=count)

    def __post_init__(self) -> None:
        ca = trustme.CA()
        self.ca_pem, self.cert, self.key = self.tmp / "ca.pem", self.tmp / "cert.pem", self.tmp / "key.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem))
        issued = ca.issue_cert("localhost")
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        issued.private_key_pem.write_to_path(str(self.key))
        self.token_file = self.tmp / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.socket = self.tmp / "served.sock"
        self.witness = self.tmp / "witness.db"

    def value(self, words: list[str], option: str | None, metavar: str) -> str:
        """What ``metavar`` (the value of ``option``, or a positional) stands for in the line of ``words``."""
        if words[0] == "tally-server":
            return self._server_value(words, option, metavar)
        values = {
            "--url": self.url, "--token": TOKEN, "--token-file": str(self.token_file), "--cafile": str(self.ca_pem),
            "--name": "usage-lines", "--theme": "textual-dark", "--op-id": f"usage-{next(self.ops)}",
            "--timeout": "60", "--host": "127.0.0.1", "--port": str(self.web_port), "--allow-host": "tally.example",
            "--max-tabs": str(TABS.max_tabs), "--max-tabs-per-client": str(TABS.max_tabs_per_client),
            "--idle-timeout": str(TABS.idle_timeout), None: "5",
        }  # fmt: skip
        assert option in values, f"no value for {option} {metavar}: teach this test what it stands for"
        return values[option]

    def _server_value(self, words: list[str], option: str | None, metavar: str) -> str:
        if option == "--db":
            return str(self.sqlite) if "check" in words else self.redis
        limits = {"--" + field.name.replace("_", "-"): str(field.default) for field in dataclasses.fields(Limits)}
        values = {
            **limits, "--host": "127.0.0.1", "--port": "0", "--unix": str(self.socket), "--redis-prefix": self.prefix,
            "--redis-replicas": "0", "--redis-replica-timeout": "1", "--witness": str(self.witness),
            "--store-timeout": "30", "--cluster-ttl": "5", "--token": TOKEN, "--token-file": str(self.token_file),
            "--tls-cert": str(self.cert), "--tls-key": str(self.key), "--allow-origin": "https://example.com",
            "--exit-when-idle": "60",
        }  # fmt: skip
        assert option in values, f"no value for {option} {metavar}: teach this test what it stands for"
        return values[option]


def variants(line: str, world: World) -> list[list[str]]:
    """``line`` as argv: every optional group in, one run per alternative of its groups of alternatives."""
    groups = _GROUP.findall(line)
    alternatives = max((group.count(" | ") + 1 for group in groups if group.startswith("[")), default=1)
    runs = []
    for pick in range(alternatives):
        argv: list[str] = []
        for group in groups:
            if group.startswith("["):
                choices = group[1:-1].split(" | ")
                words = choices[min(pick, len(choices) - 1)].split()
                if words[0] in ENDING:
                    continue
            else:
                words = group.split()
            option = None
            for word in words:
                if word == "...":
                    continue  # repeatable: once is enough
                if word.startswith("{"):
                    argv.append(word[1:-1].split(",")[0])
                elif _METAVAR.fullmatch(word):
                    argv.append(world.value([*argv, word], option, word))
                else:
                    argv.append(word)
                    option = word if word.startswith("-") else None
        runs.append([program(argv[0]), *argv[1:]])
    return runs


@pytest.fixture
def world(tmp_path: Path, redis_server: RedisServer, redis_prefix: str) -> Iterator[World]:
    """A token-protected server on SQLite for the client's lines; a real Redis (own key prefix) for the server's."""
    world = World(tmp_path, sqlite=tmp_path / "client.db", redis=redis_server.url, prefix=redis_prefix)
    world.web_port = free_port()
    with ServerProcess(world.sqlite, "--token", TOKEN) as server:
        world.url = server.start()
        yield world


def client_env(world: World) -> dict[str, str]:
    return {**user_env(), "TALLY_URL": world.url, "TALLY_TOKEN": TOKEN}


async def finished(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


async def line_of(process: asyncio.subprocess.Process, text: str, stream: str = "stderr") -> str:
    """The first line of ``process``'s ``stream`` holding ``text``."""
    reader = process.stdout if stream == "stdout" else process.stderr
    assert reader is not None
    async with asyncio.timeout(60):
        while True:
            line: str = (await reader.readline()).decode()
            assert line, f"{stream} ended without {text!r}"
            if text in line:
                return line


async def connections(world: World) -> str:
    request = urllib.request.Request(
        "http" + world.url.removeprefix("ws") + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with await asyncio.to_thread(urllib.request.urlopen, request, timeout=10) as response:
        return str(response.read().decode())


async def run_dashboard(argv: list[str], env: dict[str, str]) -> None:
    terminal = Terminal(argv, env)
    try:
        await until_shown(terminal, "● connected", timeout=20)
        terminal.type("\x11")  # ctrl+q: nothing is pending, so it quits at once
        assert await asyncio.to_thread(terminal.wait, 30) == 0, terminal.describe()
    finally:
        terminal.kill()


@contextlib.asynccontextmanager
async def running(
    argv: list[str], env: dict[str, str], *, stdout: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``argv`` started with its stderr (and ``stdout``) piped; killed on the way out if it is still running."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=subprocess.PIPE if stdout else None, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop_cleanly(process: asyncio.subprocess.Process, signum: int) -> None:
    """Send ``signum``: the process must exit with 0 within 30 s."""
    process.send_signal(signum)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def run_watch(argv: list[str], env: dict[str, str], world: World) -> None:
    async with running(argv, env, stdout=True) as watch:
        metrics = [""]

        async def read_metrics() -> None:
            await asyncio.sleep(0.1)  # /metrics counts in the address's connect rate (20 a second): keep within it
            metrics[0] = await connections(world)

        # The watcher is in: it sees every update from here on.
        opened = 'tally_connections_open{protocol="tally.v2"} 1.0'
        await until(lambda: opened in metrics[0], timeout=60, what="the watcher's connection", poll=read_metrics)
        status, _, err = await finished([tally_command(), "add", "7"], env)
        assert status == 0, err
        shown = await line_of(watch, "7", "stdout")
        assert ("+7 →" in shown) != ('"amount": 7,' in shown), shown  # a line, or with --json an object
        await stop_cleanly(watch, signal.SIGINT)


async def run_web(argv: list[str], env: dict[str, str], world: World) -> None:
    async with running(argv, env) as web:
        await line_of(web, "serving the dashboard on")
        page = f"http://127.0.0.1:{world.web_port}/"
        with await asyncio.to_thread(urllib.request.urlopen, page, timeout=30) as response:
            assert response.status == 200 and b"Tally" in response.read()
        await stop_cleanly(web, signal.SIGINT)


async def run_server(argv: list[str], env: dict[str, str], world: World) -> None:
    """Serve until an add is stored through its TLS Unix socket (the witness remembers it), then SIGTERM."""
    async with running(argv, env) as server:
        await line_of(server, "serving on")
        tls = ssl.create_default_context(cafile=str(world.ca_pem))
        connection = await unix_connect(
            str(world.socket), uri="wss://localhost/", ssl=tls, subprotocols=[Subprotocol(SUBPROTOCOL_V2)],
            additional_headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        async with Peer(connection) as peer:
            await peer.hello("usage-lines", "usage-lines-secret")
            await peer.expect(Welcome)
            await peer.send(type="add", op="1", amount=3)
            assert (await peer.next_of(Ack)).op == "1"
        await stop_cleanly(server, signal.SIGTERM)


def order(argv: list[str]) -> int:
    """The server's lines in an operator's order: init a ledger, serve it, then restore (nothing lost) and check."""
    return next((rank for rank, word in enumerate(("init", "", "restore")) if word in argv[1:2]), 1)


async def test_every_usage_line_of_every_help_runs(world: World) -> None:
    """Each usage line the helps print, filled in, does its job and exits 0; none is a usage error."""
    runs: list[list[str]] = []
    for help_argv in HELPS:
        status, shown, err = await finished([program(help_argv[0]), *help_argv[1:]], user_env())
        assert status == 0, err
        runs += [argv for line in usage_lines(shown) for argv in variants(line, world)]
    assert len(runs) >= 16, runs  # every help has its lines: an empty parse would pass vacuously
    for argv in sorted(runs, key=order):
        words = argv[1:]
        env = client_env(world) if Path(argv[0]).name == "tally" else user_env()
        if Path(argv[0]).name == "tally-server" and (not words or words[0].startswith("-")) and words != ["--version"]:
            await run_server(argv, env, world)
        elif Path(argv[0]).name == "tally" and words and words[0] == "watch":
            await run_watch(argv, env, world)
        elif Path(argv[0]).name == "tally" and words and words[0] == "web":
            await run_web(argv, env, world)
        elif Path(argv[0]).name == "tally" and words[0] not in ("add", "status", "--version"):
            await run_dashboard(argv, env)
        else:
            status, out, err = await finished(argv, env)
            assert status == 0 and "error" not in err, f"{argv}: exit {status}\n{out}{err}"
