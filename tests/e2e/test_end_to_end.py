"""The commands themselves: `tally` in a real pseudo-terminal, starting this user's own server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from tally.server.protocol import SUBPROTOCOL_V2, Presence, Update
from tests.e2e.conftest import StartTally
from tests.support import waiting
from tests.support.local import argv_of, server_pids, socket_of, unix_peer, unix_peer_when_served
from tests.support.peers import Peer
from tests.support.servers import REPOSITORY, ServerProcess
from tests.support.terminal import until_shown


async def test_tally_starts_its_own_server_and_works(user: dict[str, str], start_tally: StartTally) -> None:
    """`tally` with no --url starts this user's server on a private Unix socket, adds, restarts it, and quits."""
    path = socket_of(user)
    terminal = start_tally("--name", "e2e")
    await until_shown(terminal, "● connected")
    (first,) = server_pids(str(path))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # nobody else may reach this user's server
    argv = argv_of(first)
    assert argv[argv.index("--unix") + 1] == str(path)
    assert argv[argv.index("--exit-when-idle") + 1] == "60"

    peer = await unix_peer(path)
    assert peer.welcome is not None and "e2e" in {c.name for c in peer.welcome.clients}
    terminal.type("+7\r")
    update = await peer.next_of(Update)
    assert (update.name, update.amount, update.total) == ("e2e", 7, 7)
    await until_shown(terminal, "watcher")  # the dashboard shows who joined
    await peer.close()

    # Kill the server it started: the dashboard starts another on the same socket and carries on.
    os.kill(first, signal.SIGKILL)
    # The dashboard may be back before a screen shows "reconnecting": the log keeps the line.
    await until_shown(terminal, "disconnected:")
    await waiting.until(lambda: any(pid != first for pid in server_pids(str(path))), what="a second server")
    peer = await unix_peer_when_served(path)
    assert peer.welcome is not None and peer.welcome.total == 7
    if "e2e" not in {c.name for c in peer.welcome.clients}:
        joined = await peer.next_of(Presence, timeout=10)
        assert joined.client.name == "e2e"

    terminal.type("\x11")  # ctrl+q: nothing is pending, so it quits at once
    assert await asyncio.to_thread(terminal.wait, 10) == 0
    left = await peer.next_of(Presence)
    assert (left.event, left.client.name) == ("left", "e2e")

    # The server outlives the dashboard (detached), and keeps its files where the user's belong.
    assert len(server_pids(str(path))) == 1
    state, data = Path(user["XDG_STATE_HOME"]), Path(user["XDG_DATA_HOME"])
    assert (state / "tally" / "server.log").exists() and (data / "tally" / "tally.db").exists()
    await peer.close()


def test_two_dashboards_started_at_once_share_one_server(user: dict[str, str]) -> None:
    """Racing starts agree on one server on the user's socket: exactly one of them starts it."""
    code = "from tui.local_server import ensure_local_server; print(ensure_local_server())"
    racers = [
        subprocess.Popen([sys.executable, "-c", code], env=user, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    answers = sorted(racer.communicate(timeout=30)[0].strip() for racer in racers)
    assert answers == ["False", "False", "True"]
    assert len(server_pids(str(socket_of(user)))) == 1  # all three have returned: any second server is here now


async def test_an_idle_server_exits_by_itself(tmp_path: Path) -> None:
    """With --exit-when-idle, the server waits while anyone is connected and exits 0 after."""
    with ServerProcess(tmp_path / "tally.db", "--exit-when-idle", "1") as server:
        peer = await Peer.join(server.start(), "alice")
        await asyncio.sleep(2.5)  # the wait is the test: connected for longer than the idle limit
        assert server.process is not None and server.process.poll() is None, "exited while a client was connected"
        await peer.close()
        assert await asyncio.to_thread(server.process.wait, 10) == 0


async def test_a_server_stopped_by_sigterm_is_said_to_have_stopped(tmp_path: Path, start_tally: StartTally) -> None:
    """SIGTERM closes the connection with 1001 "server stopped", and the dashboard says the server stopped."""
    with ServerProcess(tmp_path / "tally.db") as server:
        url = server.start()
        terminal = start_tally("--url", url, "--no-spawn", "--name", "ann")
        await until_shown(terminal, "● connected")
        assert await asyncio.to_thread(server.terminate) == 0
        await until_shown(terminal, "disconnected: the server stopped")
        await until_shown(terminal, "the server stopped", "reconnecting")


async def test_a_server_dying_during_the_handshake_is_retried(tmp_path: Path, start_tally: StartTally) -> None:
    """A server that closes connections before answering (as one being killed does) is retried until one answers."""

    async def dying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # accepted by the kernel, closed by the process's death: no HTTP answer

    fake = await asyncio.start_server(dying, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    terminal = start_tally("--url", f"ws://127.0.0.1:{port}", "--no-spawn", "--name", "ann")
    try:
        await waiting.until(lambda: terminal.shows("reconnecting") or terminal.shows("offline"), what="an attempt")
        assert not terminal.shows("offline"), terminal.describe()
    finally:
        fake.close()
        await fake.wait_closed()
    with ServerProcess(tmp_path / "tally.db") as server:
        server.port = port
        server.start()
        await until_shown(terminal, "● connected", timeout=20)


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


async def test_hostile_strings_never_reach_the_terminal(user: dict[str, str], start_tally: StartTally) -> None:
    """A tally.v2 server that breaks every rule sends escape sequences in names and errors: none reach the pty."""

    async def hostile(connection: ServerConnection) -> None:
        await connection.recv()
        clients = [{"id": f"h{n}", "name": s, "address": s, "since": 0, "added": 0} for n, s in enumerate(HOSTILE)]
        welcome = {"type": "welcome", "you": "me", "total": 1, "seq": 1, "clients": clients, "history": []}
        await connection.send(json.dumps({**welcome, "ledger": "hostile", "epoch": 1}))
        for n, text in enumerate(HOSTILE, start=2):
            update = {"type": "update", "seq": n, "total": n, "amount": 1, "name": text, "client": "h0", "op": None}
            await connection.send(json.dumps({**update, "at": 0}))
            await connection.send(json.dumps({"type": "error", "code": text, "message": text, "op": None}))
        # Last, so that once it is on the screen everything before it has been handled.
        await connection.send(json.dumps({"type": "error", "code": "done", "message": END, "op": None}))
        await connection.wait_closed()

    async with serve(hostile, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL_V2)]) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        terminal = start_tally("--no-spawn", "--url", url, "--name", "victim", size=(160, 50))
        await waiting.until(lambda: terminal.has_written(END.encode()), what=f"{END!r}; {terminal.describe()}")
        assert terminal.has_written(b"PWNED-TITLE")  # the names are shown, as text
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
            assert not terminal.has_written(needle), needle
