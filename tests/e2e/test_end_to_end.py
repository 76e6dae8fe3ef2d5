"""The commands themselves: `tally` in a real pseudo-terminal, starting its own server."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from server.protocol import Presence, Update
from tests.support.peers import Peer
from tests.support.servers import REPOSITORY, ServerProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def servers_on(port: int) -> list[int]:
    """Pids of tally servers started for ``port`` (read from /proc, no extra tools)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"server" in argv and b"--port" in argv and str(port).encode() in argv:
                    pids.append(int(entry.name))
    return pids


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with private state and data directories that runs this checkout's code."""
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TERM": "xterm-256color",
        # The checkout under test, whichever one the `tally` script was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    env.pop("TALLY_URL", None)
    for key in ("XDG_STATE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(key, env[key])
    return env


class Terminal:
    """A program on a pseudo-terminal of a given size, with its screen output collected."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int] = (100, 30)) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execvpe(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.output = b""

    def read(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if ready:
                    self.output += os.read(self.fd, 65536)
        return self.output

    def read_until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        """Collect output until ``needle`` has been written; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not written within {timeout:g} s: {self.output[-2000:]!r}")
            self.read(0.05)
        return self.output

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        return None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


async def join_when_served(
    terminal: Terminal, url: str, ready: Callable[[], bool] = lambda: True, timeout: float = 10.0
) -> Peer:
    """Join ``url`` as soon as ``ready()`` and a server answers there, keeping the pty drained meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await asyncio.to_thread(terminal.read, 0.05)
        if ready():
            with contextlib.suppress(OSError):
                return await Peer.join(url, "watcher")
        if loop.time() > deadline:
            raise AssertionError(f"no server at {url}: {terminal.output.decode(errors='replace')[-2000:]}")


async def test_tally_starts_its_own_server_and_works(isolated_home: dict[str, str]) -> None:
    """`tally` with nothing running starts a detached server, connects, adds, and quits cleanly."""
    tally = shutil.which("tally", path=str(Path(sys.executable).parent))
    assert tally is not None, "the tally command is not installed in this environment"
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    terminal = Terminal([tally, "--url", url, "--name", "e2e"], isolated_home)
    try:
        peer = await join_when_served(terminal, url)  # the dashboard starts the server, then connects to it
        assert peer.welcome is not None
        if "e2e" not in {c.name for c in peer.welcome.clients}:
            joined = await peer.next_of(Presence, timeout=10)
            assert (joined.event, joined.client.name) == ("joined", "e2e")

        terminal.type("+7\r")
        update = await peer.next_of(Update)
        assert (update.name, update.amount, update.total) == ("e2e", 7, 7)
        await asyncio.to_thread(terminal.read_until, b"watcher")  # the dashboard shows who joined
        await peer.close()

        # Kill the server it started: the dashboard starts another and carries on.
        (first,) = servers_on(port)
        os.kill(first, signal.SIGKILL)
        peer = await join_when_served(terminal, url, lambda: any(pid != first for pid in servers_on(port)))
        assert peer.welcome is not None and peer.welcome.total == 7
        if "e2e" not in {c.name for c in peer.welcome.clients}:
            joined = await peer.next_of(Presence, timeout=20)
            assert joined.client.name == "e2e"

        terminal.type("\x11")  # ctrl+q
        assert await asyncio.to_thread(terminal.wait, 10) == 0
        left = await peer.next_of(Presence)
        assert (left.event, left.client.name) == ("left", "e2e")

        # The server outlives the dashboard (detached), and keeps its files where the user's belong.
        assert len(servers_on(port)) == 1
        state, data = Path(isolated_home["XDG_STATE_HOME"]), Path(isolated_home["XDG_DATA_HOME"])
        assert (state / "tally" / "server.log").exists() and (data / "tally" / "tally.db").exists()
        await peer.close()
    finally:
        terminal.kill()
        for pid in servers_on(port):
            os.kill(pid, signal.SIGKILL)


def test_two_dashboards_started_at_once_share_one_server(isolated_home: dict[str, str]) -> None:
    """Racing starts agree on one server: exactly one of them starts it."""
    port = free_port()
    code = f"from tui.local_server import ensure_local_server; print(ensure_local_server('127.0.0.1', {port}))"
    try:
        racers = [
            subprocess.Popen([sys.executable, "-c", code], env=isolated_home, stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        answers = sorted(racer.communicate(timeout=30)[0].strip() for racer in racers)
        assert answers == ["False", "False", "True"]
        assert len(servers_on(port)) == 1  # all three have returned: any second server would be here now
    finally:
        for pid in servers_on(port):
            os.kill(pid, signal.SIGKILL)


async def test_an_idle_server_exits_by_itself(tmp_path: Path) -> None:
    """With --exit-when-idle, the server waits while anyone is connected and exits 0 after."""
    with ServerProcess(tmp_path / "tally.db", "--exit-when-idle", "1") as server:
        peer = await Peer.join(server.start(), "alice")
        await asyncio.sleep(2.5)  # the wait is the test: connected for longer than the idle limit
        assert server.process is not None and server.process.poll() is None, "exited while a client was connected"
        await peer.close()
        assert await asyncio.to_thread(server.process.wait, 10) == 0


HOSTILE = [
    "\x1b]0;PWNED-TITLE\x07",  # set the window title
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",  # a hyperlink
    "\x1b[6n",  # ask the terminal to report the cursor (answers arrive as input)
    "\x1b]52;c;UFdORUQ=\x07",  # write the clipboard
    "\x9b31m",  # 8-bit CSI
    "[@click=app.quit]quit[/]",
    "[link=https://evil.example]x[/link]",
]

END = "end-of-hostile-strings"


async def test_hostile_strings_never_reach_the_terminal(isolated_home: dict[str, str]) -> None:
    """A server that breaks every rule sends escape sequences in names and errors: none reach the pty."""
    tally = shutil.which("tally", path=str(Path(sys.executable).parent))
    assert tally is not None

    async def hostile(connection: ServerConnection) -> None:
        await connection.recv()
        clients = [{"id": f"h{n}", "name": s, "address": s, "since": 0, "added": 0} for n, s in enumerate(HOSTILE)]
        await connection.send(
            json.dumps({"type": "welcome", "you": "me", "total": 1, "seq": 1, "clients": clients, "history": []})
        )
        for n, text in enumerate(HOSTILE, start=2):
            update = {"type": "update", "seq": n, "total": n, "amount": 1, "name": text, "client": "h0", "op": None}
            await connection.send(json.dumps({**update, "at": 0}))
            await connection.send(json.dumps({"type": "error", "code": text, "message": text, "op": None}))
        # Last, so that once it is on the screen everything before it has been handled.
        await connection.send(json.dumps({"type": "error", "code": "done", "message": END, "op": None}))
        await connection.wait_closed()

    async with serve(hostile, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/tally.v1"
        terminal = Terminal([tally, "--no-spawn", "--url", url, "--name", "victim"], isolated_home, size=(160, 50))
        try:
            screen = await asyncio.to_thread(terminal.read_until, END.encode())
            assert b"PWNED-TITLE" in screen  # the names are shown, as text
            terminal.type("\x11")
            assert await asyncio.to_thread(terminal.wait, 10) == 0  # still alive until asked to quit
            for needle in (  # in everything it wrote, up to its exit
                b"\x1b]0;PWNED",
                b"\x1b]8;;https://evil",
                b"\x1b[6n",
                b"\x1b]52;",
                b"\xc2\x9b31m",
                b"\x9b31m",
            ):
                assert needle not in terminal.output, needle
        finally:
            terminal.kill()
