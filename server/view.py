"""What this server knows of the ledger now: its identity, head, recent records and who added what.

Sans-I/O and owned by the ledger's writer (:mod:`tally.server.ledger`), which is
the only one to change it; everyone else reads it: the welcome, a resuming
dashboard's missed updates, the chart's recent points. It also judges a
dashboard's sealed claim of where it left off (:meth:`LedgerView.judge`), since
it holds the key that seals what this server says.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tally.server.protocol import HistoryPoint, Resume
from tally.server.state import Claim, Head, Record, Sealer, Snapshot, saturating_add, seal

__all__ = ["RECENT_KEPT", "Judgement", "LedgerView"]

# Records kept in memory: a dashboard that missed no more than this many is sent just those.
RECENT_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a dashboard's sealed resume says of the store.

    ``rewound``: the store no longer holds what the dashboard was told (why, in people's words);
    ``ask``: compare with the store's own fingerprint at this seq (not in memory); else nothing to fear.
    """

    rewound: str = ""
    ask: int | None = None
    claim: Claim | None = None


class LedgerView:
    def __init__(self) -> None:
        self.id = ""
        self.epoch = 0
        self.key = ""
        self.head = Head()
        self.recent: deque[Record] = deque(maxlen=RECENT_KEPT)
        self.contributions: dict[str, int] = {}
        self._sealer = Sealer("")  # the key's HMAC, made again when the key changes

    @property
    def total(self) -> int:
        return self.head.total

    @property
    def seq(self) -> int:
        return self.head.seq

    def load(self, snapshot: Snapshot) -> None:
        """Take ``snapshot`` as the truth (at start, and after a store came back or was repaired)."""
        self.id, self.epoch, self.head = snapshot.ledger, snapshot.epoch, snapshot.head
        self.key = snapshot.key or self.key
        self.recent.clear()
        self.recent.extend(snapshot.recent)
        self.contributions = dict(snapshot.contributions)

    def take(self, records: Sequence[Record]) -> None:
        """Records applied after the head, in order."""
        last = records[-1]
        self.head = Head(last.total, last.seq, last.digest)
        self.recent.extend(records)
        for record in records:
            if record.session is not None:
                self.contributions[record.session] = saturating_add(
                    self.contributions.get(record.session, 0), record.amount
                )

    def claim(self) -> Claim:
        return Claim(self.id, self.epoch, self.head)

    def contribution(self, session: str | None) -> int:
        return 0 if session is None else self.contributions.get(session, 0)

    def seal(self, seq: int, total: int, digest: str) -> str:
        """The seal of update ``seq`` (see :func:`tally.server.state.seal`); "" without a key."""
        if not self.key or not digest:
            return ""
        if self._sealer.key != self.key:
            self._sealer = Sealer(self.key)
        return self._sealer(self.id, self.epoch, seq, total, digest)

    def missed(self, after: int) -> tuple[Record, ...] | None:
        """Every record after seq ``after``, or None if they are no longer all in memory."""
        if after > self.seq:
            return None
        if after == self.seq:
            return ()
        if not self.recent or self.recent[0].seq > after + 1:
            return None
        missed = tuple(record for record in self.recent if record.seq > after)
        # All of them, or none: old records thinned out past retention leave gaps.
        return missed if len(missed) == self.seq - after else None

    def points(self, count: int) -> tuple[HistoryPoint, ...]:
        """The last ``count`` points of the total, oldest first."""
        start = max(0, len(self.recent) - count)
        return tuple(self.recent[index].point() for index in range(start, len(self.recent)))

    def digest_at(self, seq: int) -> str | None:
        """The fingerprint after update ``seq``, if it is in memory."""
        if seq == self.seq:
            return self.head.digest
        if not self.recent or not self.recent[0].seq <= seq <= self.recent[-1].seq:
            return None
        index = seq - self.recent[0].seq  # consecutive, unless old records were thinned out
        if self.recent[index].seq != seq:
            index = next((i for i, record in enumerate(self.recent) if record.seq == seq), -1)
        return (self.recent[index].digest or None) if index >= 0 else None

    def judge(self, resume: Resume) -> Judgement:
        """Does a dashboard's sealed resume show that the store lost history this server's ledger told it?

        A claim that is not sealed with this ledger's key proves nothing (anyone could send
        one) and is ignored; so is one from another ledger or epoch (a resync handles those).
        """
        if resume.total is None or not self.key or (resume.ledger, resume.epoch) != (self.id, self.epoch):
            return Judgement()
        expected = seal(self.key, resume.ledger, resume.epoch, resume.seq, resume.total, resume.fingerprint)
        if not hmac.compare_digest(expected, resume.seal):
            return Judgement()
        claim = Claim(resume.ledger, resume.epoch, Head(resume.total, resume.seq, resume.fingerprint))
        if resume.seq > self.seq:
            return Judgement(ask=resume.seq, claim=claim)  # ahead of us: maybe we lag, maybe the store lost it
        known = self.digest_at(resume.seq)
        if known is None:
            return Judgement(ask=resume.seq, claim=claim)
        if known != resume.fingerprint:
            return Judgement(rewound=f"a dashboard had another history at update {resume.seq}", claim=claim)
        return Judgement()
