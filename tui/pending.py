"""The adds typed and not yet acknowledged: the dashboard's one record of them, kept on disk.

Each add gets its op id here when typed and stays until the server
acknowledges it (or refuses it for a reason that resending will not change).
The link resends whatever is here after every reconnect, with the same
op ids, so the server's dedupe makes each count exactly once.

With a :class:`~tui.journal.Journal`, the adds, the session's secret and the
ledger they are meant for are written to a file before any of them is sent,
so a dashboard that is killed does not lose what was typed: the next one the
same user starts for that server sends them. Each add keeps the name it was
typed under, so that it counts under that name whenever it is sent.

The file also keeps where the dashboard's stream stood (``resume``: the last
update's seq, total, fingerprint and seal, as the inbox last had them), so
that a dashboard started later still proves what it saw. It is written with
the adds, and at the end of a session, never once per update.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tally.server.protocol import Resume
from tally.tui.journal import Journal

__all__ = ["Pending", "PendingAdd"]


@dataclass(frozen=True, slots=True)
class PendingAdd:
    op: str
    amount: int
    typed_at: float  # Unix time
    text: str = ""  # as typed, to put back in the input if the server refuses it
    undo: str | None = None  # the op this add takes back
    name: str = ""  # the name it was typed under ("": whatever name the session has when it is sent)


class Pending:
    """Pending adds in the order typed, keyed by op id; the session's secret; the ledger they are for."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self._adds: dict[str, PendingAdd] = {}
        self._next_op = 1
        self.secret = ""
        self.ledger = ""  # the ledger these adds are meant for ("" until a server says which)
        # Where the stream stood (the inbox's): written with the adds, and by checkpoint().
        self.resume: Resume | None = None
        self._saved_resume: Resume | None = None
        self._dirty = False
        if journal is not None:
            self._load(journal.read())
        if not self.secret:
            # Proves the session to the server: whoever holds it may resend these op ids.
            self.secret = secrets.token_urlsafe(24)
            self._dirty = True

    def _load(self, state: dict[str, Any]) -> None:
        self.secret = str(state.get("secret", ""))
        self.ledger = str(state.get("ledger", ""))
        self._next_op = int(state.get("next_op", 1))
        self._adds = {add["op"]: PendingAdd(**add) for add in state.get("adds", [])}
        self.resume = self._saved_resume = _resume(state.get("resume"))

    def __len__(self) -> int:
        return len(self._adds)

    def __iter__(self) -> Iterator[PendingAdd]:
        return iter(list(self._adds.values()))

    def __contains__(self, op: object) -> bool:
        return op in self._adds

    def get(self, op: str) -> PendingAdd | None:
        return self._adds.get(op)

    def add(
        self,
        amount: int,
        *,
        at: float | None = None,
        text: str = "",
        undo: str | None = None,
        name: str = "",
        op: str | None = None,
    ) -> PendingAdd:
        """Record a newly typed add under a fresh op id (saved before it is sent: see :meth:`save`).

        ``name``: the name it was typed under (a later start sends it under that name).
        ``op``: an op id the caller chose instead (``tally add --op-id``: a script's retry reuses it).
        """
        if op is None:
            op = str(self._next_op)
            self._next_op += 1
        pending = PendingAdd(op, amount, time.time() if at is None else at, text, undo, name)
        self._adds[pending.op] = pending
        self._dirty = True
        return pending

    def settle(self, op: str) -> PendingAdd | None:
        """Forget ``op``: acknowledged, or refused for good. None if it was not pending."""
        settled = self._adds.pop(op, None)
        if settled is not None:
            self._dirty = True
        return settled

    def clear(self) -> None:
        self._adds.clear()
        self._dirty = True

    def bind(self, ledger: str) -> None:
        """Say which ledger the adds are for (the first server to welcome us decides)."""
        if ledger != self.ledger:
            self.ledger = ledger
            self._dirty = True

    @property
    def amount(self) -> int:
        """What the pending adds will add together (for a projected total)."""
        return sum(add.amount for add in self._adds.values())

    def save(self) -> None:
        """Write everything to the journal, if an add or the ledger changed: call before sending an add."""
        if self.journal is None or not self._dirty:
            return
        state: dict[str, Any] = {
            "secret": self.secret,
            "ledger": self.ledger,
            "next_op": self._next_op,
            "adds": [asdict(add) for add in self._adds.values()],
        }
        if self.resume is not None:
            state["resume"] = asdict(self.resume)
        self.journal.write(state)
        self._saved_resume = self.resume
        self._dirty = False

    def checkpoint(self) -> None:
        """Write everything if anything changed, where the stream stands included (a session's end, quitting)."""
        if self.resume != self._saved_resume:
            self._dirty = True
        self.save()


def _resume(data: object) -> Resume | None:
    """A resume point as the journal keeps it; None if there is none, or it is not one (an older file)."""
    if not isinstance(data, dict):
        return None
    try:
        resume = Resume(**data)
    except TypeError:
        return None
    numbers = (resume.epoch, resume.seq, 0 if resume.total is None else resume.total)
    texts = (resume.ledger, resume.fingerprint, resume.seal)
    if all(isinstance(n, int) and not isinstance(n, bool) for n in numbers) and all(isinstance(t, str) for t in texts):
        return resume
    return None
