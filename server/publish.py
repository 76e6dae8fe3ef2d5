"""The one way out: records become updates, credited to their sessions and published; welcomes are built here.

Like broadcaster's ``Broadcast.publish``: the ledger hands its records here once
each, in order, whether this server applied them or read them back from a shared
store; presence events and store states go out the same way. Nothing downstream
hands anything back. The welcome, the snapshot a joiner starts from, is built here
too, from the same view, so that a joiner and the updates after it agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from tally.server.fanout import Fanout
from tally.server.limits import Limits
from tally.server.presence import Roster
from tally.server.protocol import (
    HISTORY_POINTS,
    Hello,
    LimitsInfo,
    Presence,
    ServerInfo,
    StoreStatus,
    Update,
    Welcome,
)
from tally.server.state import Record
from tally.server.view import LedgerView

__all__ = ["MAX_MISSED", "RECENT_IN_WELCOME", "Publisher", "session_tag"]

# How many updates a fresh dashboard is sent for its activity log.
RECENT_IN_WELCOME = 20
# A dashboard that missed more than this is sent a snapshot, not a replay.
MAX_MISSED = 1000
# A v1 welcome lists everyone; past this many it lists the first ones (the frame must stay
# well under a dashboard's 1 MiB limit).
V1_WELCOME_CLIENTS = 1000


def session_tag(session: str | None) -> str:
    """A short, public form of a session, telling apart people with the same name."""
    return "" if session is None else session[:4]


class Publisher:
    def __init__(self, view: LedgerView, roster: Roster, fanout: Fanout, *, server: ServerInfo, limits: Limits) -> None:
        self.view = view
        self.roster = roster
        self.fanout = fanout
        self.server = server
        self.limits = LimitsInfo(
            max_amount=limits.max_amount, rate=limits.rate, burst=limits.burst, retention=limits.retention
        )
        self.store = StoreStatus("available")

    def records(self, records: Sequence[Record]) -> None:
        """Applied records, in seq order: credit each adder, then tell everyone.

        Only the last update of those sent together carries a seal: a client claims the last sealed update it
        saw, and these reach it together, so sealing the others (an HMAC each) would prove nothing more.
        """
        view, roster, fanout = self.view, self.roster, self.fanout
        last = len(records) - 1
        for index, record in enumerate(records):
            roster.credit(record.client, view.contribution(record.session))
            fanout.publish(self.update(record, sealed=index == last))

    def presence(self, presence: Presence) -> None:
        """A join, leave or rename: it may wait a moment to share a frame with others."""
        self.fanout.publish(presence, soon=False)

    def store_changed(self, status: StoreStatus) -> None:
        """The store became available, unavailable or rewound: every v2 dashboard is told once."""
        self.store = status
        self.fanout.publish(status)

    def update(self, record: Record, *, sealed: bool = True) -> Update:
        """The ``update`` message for a stored record, sealed with the ledger's key (unless not ``sealed``)."""
        return Update(
            seq=record.seq,
            total=record.total,
            amount=record.amount,
            name=record.name,
            client=record.client,
            op=record.op,
            at=record.at,
            tag=session_tag(record.session),
            undoes=record.undoes,
            fingerprint=record.digest,
            seal=self.view.seal(record.seq, record.total, record.digest) if sealed else "",
        )

    def welcome(self, version: int) -> Welcome:
        """Everything joiners of this moment share (``you`` and their own fields are filled in per joiner)."""
        view, roster = self.view, self.roster
        # v1 has no pages: it gets the first ones. v2 gets everyone in a small room, and
        # asks for a page at a time in a large one.
        everyone = roster.clients() if roster.live else ()
        clients = roster.clients(limit=V1_WELCOME_CLIENTS) if version == 1 else everyone
        recent = list(view.recent)[-RECENT_IN_WELCOME:] if version >= 2 else []
        head = view.head
        return Welcome(
            you="",
            total=head.total,
            seq=head.seq,
            clients=clients,
            history=view.points(HISTORY_POINTS),
            ledger=view.id,
            epoch=view.epoch,
            server=self.server,
            limits=self.limits,
            online=len(roster),
            live=roster.live,
            recent=tuple(self.update(record) for record in recent),
            fingerprint=head.digest,
            seal=view.seal(head.seq, head.total, head.digest),
            store=self.store,
        )

    def personal(self, hello: Hello, client_id: str, session: str | None) -> Welcome:
        """A joiner's own part of the welcome, built at the flush that sends it: who it is, what it missed."""
        view = self.view
        missed = None
        resume = hello.resume
        if resume is not None and (resume.ledger, resume.epoch) == (view.id, view.epoch):
            records = view.missed(resume.seq)
            if records is not None and len(records) <= MAX_MISSED:
                missed = tuple(self.update(record) for record in records)
        return Welcome(
            you=client_id,
            total=0,
            seq=0,
            clients=(),
            history=(),
            session=session or "",
            added=view.contribution(session),
            missed=missed,
        )
