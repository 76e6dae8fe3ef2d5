"""Files that keep a dashboard's session and unacknowledged adds across crashes.

One file per server and session, in the user's state directory::

    ~/.local/state/tally/pending/<server>/<session>.json   the secret, the ledger, the adds
    ~/.local/state/tally/pending/<server>/<session>.lock   held while a dashboard uses it

A running dashboard holds its lock; a file whose lock nobody holds was left by
a dashboard that quit or died. The next dashboard for that server adopts the
newest such file as its own session (same secret, same op ids) and sends the
adds of any others, so what was typed counts exactly once whatever crashed.
Writes are atomic (a temporary file, fsync, rename), so a crash mid-write
leaves the previous version. Every file is 0600 and every directory made for
them 0700, whatever the umask: a journal holds its session's secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import platformdirs

from tally.server.protocol.files import open_private, private_directory

__all__ = ["Journal", "fresh_in", "journals_for"]


def _server_dir(url: str, root: Path | None) -> Path:
    base = root if root is not None else platformdirs.user_state_path("tally") / "pending"
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[-1])[:40]
    return base / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


class Journal:
    """One session's file, locked by this process while it is in use."""

    def __init__(self, path: Path, lock: int) -> None:
        self.path = path
        self._lock: int | None = lock

    @classmethod
    def try_lock(cls, path: Path) -> Journal | None:
        """The journal at ``path`` if no running dashboard holds it, else None."""
        private_directory(path.parent)
        lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The lock file may have been removed (remove() below) between our open and our
            # flock: a lock on a deleted file locks nothing that the next dashboard can see.
            held = os.fstat(lock)
            now = os.stat(path.with_suffix(".lock"))
            if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(lock)
            return None
        return cls(path, lock)

    def read(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write(self, state: dict[str, Any]) -> None:
        temporary = self.path.with_suffix(".tmp")
        with open_private(temporary, "w") as file:
            json.dump(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power cut
        finally:
            os.close(directory)

    def remove(self) -> None:
        """Delete the file (its adds were all settled or discarded) and let go of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # Unlinked while still held, then released: a dashboard that opened it meanwhile sees,
        # once it gets the lock, that the file is gone (see try_lock), and never shares a session.
        with contextlib.suppress(FileNotFoundError):
            self.path.with_suffix(".lock").unlink()
        self.release()

    def release(self) -> None:
        """Let another dashboard adopt this file."""
        if self._lock is not None:
            os.close(self._lock)  # closing drops the flock
            self._lock = None


def fresh_in(directory: Path) -> Journal:
    """A new journal (a new session) in ``directory``, locked by this process."""
    while True:
        fresh = Journal.try_lock(directory / f"{os.urandom(6).hex()}.json")
        if fresh is not None:
            return fresh


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0  # removed by its dashboard since the listing: adopted last, as an empty session


def journals_for(url: str, *, root: Path | None = None) -> tuple[Journal, list[Journal]]:
    """This dashboard's journal for ``url`` (adopted or new), and the others left without a dashboard.

    The newest unheld journal is adopted; the rest are returned locked, for
    their adds to be sent and the files removed.
    """
    directory = _server_dir(url, root)
    private_directory(directory)
    unheld = []
    for path in sorted(directory.glob("*.json"), key=_modified, reverse=True):
        journal = Journal.try_lock(path)
        if journal is not None:
            unheld.append(journal)
    if unheld:
        return unheld[0], unheld[1:]
    return fresh_in(directory), []
