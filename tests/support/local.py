"""One local user's world for end-to-end tests: their directories, their own server, their dashboards' journals.

A "user" here is a set of XDG directories (state, data, config, runtime): the
tests cannot switch uid, and the dashboard finds everything of its user
through them. Servers a dashboard starts run detached, so they are found in
/proc (by the socket or port in their command line) and killed by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.client import unix_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tally.server.protocol import SUBPROTOCOL_V2, Welcome
from tests.support.peers import Peer
from tests.support.servers import REPOSITORY

__all__ = [
    "argv_of",
    "free_port",
    "journal_adds",
    "journals",
    "kill_pids",
    "server_pids",
    "socket_of",
    "tally_command",
    "unix_peer",
    "unix_peer_when_served",
    "user_env",
]

XDG = {"XDG_STATE_HOME": "state", "XDG_DATA_HOME": "data", "XDG_CONFIG_HOME": "config", "XDG_RUNTIME_DIR": "run"}


def tally_command() -> str:
    """The installed ``tally`` script (it runs the checkout under test: see :func:`user_env`)."""
    tally = shutil.which("tally", path=str(Path(sys.executable).parent))
    assert tally is not None, "the tally command is not installed in this environment"
    return tally


def user_env(home: Path | None = None) -> dict[str, str]:
    """The environment of a local user whose private directories are under ``home``.

    Without ``home``, the directories already set for this test (the autouse
    ``private_directories`` fixture) are that user's.
    """
    env = {**os.environ, "TERM": "xterm-256color"}
    if home is not None:
        for variable, name in XDG.items():
            (home / name).mkdir(mode=0o700, parents=True, exist_ok=True)
            env[variable] = str(home / name)
    for variable in ("TALLY_URL", "TALLY_TOKEN", "NO_COLOR"):
        env.pop(variable, None)
    # The checkout under test, whichever one the `tally` script was installed from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    return env


def socket_of(env: dict[str, str]) -> Path:
    """Where the local server of the user of ``env`` listens."""
    return Path(env["XDG_RUNTIME_DIR"]) / "tally" / "tally.sock"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_pids(mark: str) -> list[int]:
    """Pids of running ``python -m server`` processes whose command line has an argument containing ``mark``.

    ``mark`` is a port, or a path that an argument starts with (a socket, a runtime directory).
    Read from /proc, no extra tools.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if status[0] == "Z":  # a zombie no longer serves anything
                continue
            is_server = (b"-m" in argv and b"tally.server" in argv) or any(a.endswith(b"tally-server") for a in argv)
            wanted = mark.encode()
            if is_server and any(a == wanted or (wanted.startswith(b"/") and a.startswith(wanted)) for a in argv):
                pids.append(int(entry.name))
    return pids


def argv_of(pid: int) -> list[str]:
    """The command line of process ``pid``."""
    return [arg.decode(errors="replace") for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def unix_peer(path: Path, name: str = "watcher", secret: str | None = None, **hello: Any) -> Peer:
    """A tally.v2 peer on a Unix socket (``Peer.join`` takes only ws:// URLs); it has said hello."""
    connection = await unix_connect(
        str(path), uri="ws://localhost/", subprotocols=[Subprotocol(SUBPROTOCOL_V2)], max_queue=None
    )
    peer = Peer(connection)
    await peer.hello(name, secret or f"secret-of-{name}-{id(peer)}", **hello)
    peer.welcome = await peer.expect(Welcome)
    return peer


async def unix_peer_when_served(path: Path, name: str = "watcher", timeout: float = 10.0) -> Peer:
    """:func:`unix_peer` as soon as a server serves at ``path`` (one still opening its store answers 503);
    fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await unix_peer(path, name)
        except (OSError, InvalidStatus) as exc:
            if loop.time() > deadline or (isinstance(exc, InvalidStatus) and exc.response.status_code != 503):
                raise
            await asyncio.sleep(0.02)


def journals(env: dict[str, str]) -> list[dict[str, Any]]:
    """The dashboards' journals of the user of ``env``, for every server, as written on disk."""
    found = []
    for path in sorted((Path(env["XDG_STATE_HOME"]) / "tally" / "pending").glob("*/*.json")):
        with contextlib.suppress(FileNotFoundError, ValueError):  # renamed over meanwhile: read it next time
            found.append(json.loads(path.read_text()))
    return found


def journal_adds(env: dict[str, str]) -> list[int]:
    """The amounts of every pending add in the user's journals on disk."""
    return [add["amount"] for journal in journals(env) for add in journal.get("adds", [])]
