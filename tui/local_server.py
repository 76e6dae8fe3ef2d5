"""The user's own local server: found, or started, the way tmux starts its server.

Each user's dashboards share one server on a Unix socket in a directory only
that user can enter (``$XDG_RUNTIME_DIR/tally`` or ``/tmp/tally-<uid>``), so
one local user's dashboard never joins or starts a server another user owns.
A dashboard starts a server only at that address; pointed anywhere else, it
connects and waits.

The server runs detached (its own session, so closing this terminal does not
stop it), logs to the user's state directory (0600 in 0700, whatever the umask), keeps its database in the data
directory, and exits by itself after a minute with no dashboard. A lock file
makes two dashboards started at the same instant agree on one server.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import platformdirs

from tally.server.protocol.files import open_private

__all__ = [
    "IDLE_EXIT_SECONDS",
    "LocalServerError",
    "default_url",
    "ensure_local_server",
    "runtime_dir",
    "server_log_path",
]

IDLE_EXIT_SECONDS = 60


class LocalServerError(OSError):
    """The local server could not be started (or its directory is not safe); the message says why."""


def runtime_dir() -> Path:
    """The user's private directory for the server's socket, created if needed and checked.

    Like tmux's: it must belong to this user and let nobody else in.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    directory = Path(base) / "tally" if base else Path("/tmp") / f"tally-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise LocalServerError(
            f"{directory} is not private to you (owner {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); "
            "remove it or fix its permissions"
        )
    return directory


def socket_path() -> Path:
    return runtime_dir() / "tally.sock"


def default_url() -> str:
    """The address of this user's local server."""
    return f"unix://{socket_path()}"


def server_log_path() -> Path:
    return platformdirs.user_state_path("tally") / "server.log"


def _listening(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(0.5)
            probe.connect(str(path))
            return True
    except OSError:
        return False


def ensure_local_server(*, timeout: float = 10.0) -> bool:
    """Make sure this user's local server listens; return True if we started it."""
    path = socket_path()
    if _listening(path):
        return False
    with open_private(runtime_dir() / "spawn.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _listening(path):  # another dashboard won the race
            return False
        path.unlink(missing_ok=True)  # left by a server that was killed
        log = server_log_path()
        # Private, whatever the umask: the log holds names, addresses and join lines.
        with open_private(log, "a") as log_file:
            # -P: never a server.py from the current directory in place of ours.
            command = [sys.executable, "-P", "-m", "tally.server", "--unix", str(path)]
            process = subprocess.Popen(
                [*command, "--exit-when-idle", str(IDLE_EXIT_SECONDS)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _listening(path):
                return True
            if process.poll() is not None:
                raise LocalServerError(f"the local server exited at once; see {log}")
            time.sleep(0.05)
        raise LocalServerError(f"the local server did not start within {timeout:.0f} s; see {log}")
