"""Files only their owner may read: 0600 in 0700 directories, whatever the umask.

Both sides write files another local user must not read: the server its database,
witness log and sidecar; the dashboard its journals of pending adds (a session's
secret) and the local server's log (names and addresses). The mode is given at
creation and set again after it, so that a umask of 022 (or any other) changes
nothing. Directories made here are private, each of them, not only the last;
files and directories that exist already keep the mode their owner gave them.

It lives beside the protocol because the dashboard may import only that package,
and it needs nothing but the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

__all__ = ["make_private", "open_private", "private_directory"]

_OPEN_FLAGS = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}


def private_directory(directory: Path) -> Path:
    """Create ``directory`` and any missing parent, each 0700; return it."""
    missing = [parent for parent in [directory, *directory.parents] if not parent.exists()]
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        os.chmod(made, 0o700)
    return directory


def make_private(path: Path) -> None:
    """Create ``path``'s directory (0700) and the file itself (0600, empty) if they are missing.

    SQLite gives the WAL and shared-memory files the database file's own permissions, so a
    database made private here has them private too.
    """
    private_directory(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)


def open_private(path: Path, mode: str) -> IO[str]:
    """``open(path, mode)`` for text, ``mode`` ``"w"`` or ``"a"``, its file 0600 in a private directory.

    ``"w"`` replaces what the file held, so its mode is set whether or not it existed (a
    temporary file left by an older version keeps no wider mode); ``"a"`` sets it only on a
    file it creates.
    """
    private_directory(path.parent)
    existed = mode == "a" and path.exists()
    descriptor = os.open(path, _OPEN_FLAGS[mode], 0o600)
    try:
        if not existed:
            os.fchmod(descriptor, 0o600)
        return os.fdopen(descriptor, mode, encoding="utf-8")
    except BaseException:
        os.close(descriptor)
        raise
