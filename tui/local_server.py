"""Start a local tally-server when none is running, the way tmux starts its server.

The server runs detached (its own session, so closing this terminal does not
stop it), logs to the user's state directory, keeps its database in the data
directory, and exits by itself after a minute with no dashboard. A lock file
makes two dashboards started at the same instant agree on one server.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

__all__ = ["IDLE_EXIT_SECONDS", "LocalServerError", "ensure_local_server", "is_local", "server_log_path"]

IDLE_EXIT_SECONDS = 60
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LocalServerError(OSError):
    """The local server could not be started; the message says where its log is."""


def is_local(url: str) -> tuple[str, int] | None:
    """The (host, port) to start a server on, if ``url`` is a plain ws:// URL on this machine."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname not in LOOPBACK or parts.path not in ("", "/"):
        return None
    return parts.hostname, parts.port or 80


def server_log_path() -> Path:
    return platformdirs.user_state_path("tally") / "server.log"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_local_server(host: str, port: int, *, timeout: float = 10.0) -> bool:
    """Make sure a server listens on ``host:port``; return True if we started it."""
    if _listening(host, port):
        return False
    state = platformdirs.user_state_path("tally")
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "spawn.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _listening(host, port):  # another dashboard won the race
            return False
        log = server_log_path()
        with open(log, "a") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "server",
                    "--host", host, "--port", str(port),
                    "--exit-when-idle", str(IDLE_EXIT_SECONDS),
                ],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _listening(host, port):
                return True
            if process.poll() is not None:
                raise LocalServerError(f"the local server exited at once; see {log}")
            time.sleep(0.05)
        raise LocalServerError(f"the local server did not start within {timeout:.0f} s; see {log}")
