"""The session of this user's script commands: one secret per server, the same on every run.

The server deduplicates op ids per session, and a session is proved by its
secret (``docs/protocol.md``). A dashboard keeps its secret in its journal; a
script has no journal, so a script that retries ``tally add --op-id ID`` after
exit status 4 (outcome unknown) needs another way back into the session of its
first try. Here the secret is derived, not stored: an HMAC of the server's
URLs under a key kept once per user (``script.key`` in the user's state
directory, private to them). So every run of this user's scripts against one
server shares one session, and no server is ever sent the secret of another
(a server's operator could otherwise add or undo in our name elsewhere).

Caveats, said where scripts are documented (docs/cli.md): the session is per
user and per ``--url`` list as given (in any order); the same server reached
through another URL is another session, where the same op id counts again.
The key is created with ``link(2)``, which never replaces a file: two scripts
started at once for the first time agree on one key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from tally.server.protocol.files import private_directory

__all__ = ["ScriptSessionError", "default_key_path", "script_secret"]

_KEY_CHARS = 64  # 32 random bytes, in hex


class ScriptSessionError(OSError):
    """The key cannot be read or created; the message says where and why."""


def default_key_path() -> Path:
    return platformdirs.user_state_path("tally") / "script.key"


def script_secret(urls: Sequence[str], *, key_path: Path | None = None) -> str:
    """This user's secret for the server at ``urls`` (64 hex digits), the same for every run."""
    key = _key(default_key_path() if key_path is None else key_path)
    servers = ",".join(sorted(set(urls)))
    return hmac.new(key.encode(), f"tally script session\n{servers}".encode(), hashlib.sha256).hexdigest()


def _key(path: Path) -> str:
    """The key at ``path``, created (private to this user) if there is none yet."""
    try:
        text = path.read_text() if path.exists() else _create(path)
    except OSError as exc:
        raise ScriptSessionError(f"cannot keep the scripts' session key in {path}: {exc.strerror or exc}") from None
    return _checked(text, path)


def _create(path: Path) -> str:
    """Write a new key at ``path``, unless another script did first; the key that is there now."""
    private_directory(path.parent)  # each directory made 0700, whatever the umask
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, (secrets.token_hex(_KEY_CHARS // 2) + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # never over a key another script made meanwhile: the first one wins
    finally:
        temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # a key lost to a power cut would make the retry a new session
    finally:
        os.close(directory)
    return path.read_text()


def _checked(text: str, path: Path) -> str:
    key = text.strip()
    if len(key) != _KEY_CHARS or any(char not in "0123456789abcdef" for char in key):
        raise ScriptSessionError(f"{path} is not a key Tally wrote; remove it (a new one is made)")
    return key
