"""The sidecar: a small file beside a SQLite database that remembers the last update committed.

Written after each commit, outside the database, in one fixed-width write (never torn
by a process crash, never shorter than before): ledger id, seq, and the history's
fingerprint there. At start the database must hold at least that update, with that
fingerprint; otherwise it went backwards or was replaced, and acknowledged adds are gone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tally.server.state import Head

__all__ = ["Mark", "Sidecar"]

log = logging.getLogger("tally.server")


@dataclass(frozen=True, slots=True)
class Mark:
    """What the sidecar says: the ledger, and the last update committed with its fingerprint ("" if unknown)."""

    ledger: str
    seq: int
    digest: str


class Sidecar:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> Mark | None:
        try:
            fields = self.path.read_text().split()
        except FileNotFoundError:
            return None
        try:
            ledger, seq, *rest = fields
            return Mark(ledger, int(seq), rest[0] if rest else "")  # older sidecars had no fingerprint
        except ValueError:
            # Torn by a power cut mid-write: it can only have been behind the database.
            log.warning("the ledger sidecar %s is unreadable; rewriting it", self.path)
            return None

    def compare(self, ledger: str, head: Head, digest_at: Callable[[int], str | None]) -> str | None:
        """What is wrong with a database holding ``ledger`` at ``head``, by this sidecar; None if nothing."""
        mark = self.read()
        if mark is None:
            return None
        if mark.ledger != ledger:
            return (
                f"holds ledger {ledger} at update {head.seq}, but ledger {mark.ledger} was being served, "
                f"up to update {mark.seq} (see {self.path})"
            )
        if head.seq < mark.seq:
            return f"ends at update {head.seq}, but update {mark.seq} was acknowledged before (see {self.path})"
        found = head.digest if head.seq == mark.seq else digest_at(mark.seq)
        if mark.digest and found and found != mark.digest:
            return (
                f"holds another history at update {mark.seq} than the one acknowledged (see {self.path}): "
                "an older copy that went on from an earlier point"
            )
        return None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, ledger: str, head: Head) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, f"{ledger} {head.seq:020d} {head.digest:<16}\n".encode(), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
