"""What the server says during a session, turned into the link's events, in order.

Sans-I/O: no loop, no clock of its own, no socket. :class:`tui.link.Link`
hands it each decoded message and owns the timers it asks for: updates are
batched (``take`` returns :class:`FlushAt` for the first of a batch, and the
link calls :meth:`Inbox.flush` then, the latest total winning; under a stream of
updates, a batch at most every ``flush_every`` seconds), anything else is posted
after the updates that came before it, and acks and refusals settle the pending
adds through the outbox.

The inbox follows the server's store: while it is away (``unavailable`` or
``rewound``, said by a ``store`` message or the welcome, or inferred from a
refusal by a server that never says), the outbox holds the adds, those refused
"not now" included, and sends them all again when the store is back. That is one
:class:`StoreChanged` each way, never an event per refusal; a slow probe
(:class:`ProbeAfter`, with backoff) covers a server that never says it is back.

It also owns where the stream stands: the ledger, its epoch, and the last
update's (or the welcome's) seq, total, fingerprint and seal, sent back in the
next hello's ``resume`` so that the server can tell whether its store still
holds what this dashboard saw. The pending adds' journal keeps a copy on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tally.server.protocol import (
    Ack,
    ClientsPage,
    Error,
    ErrorCode,
    HistoryPage,
    Online,
    Presence,
    Resume,
    ServerMessage,
    StoreStatus,
    Update,
    Welcome,
)
from tally.tui.messages import (
    AddAcknowledged,
    ClientsPageArrived,
    Event,
    HistoryArrived,
    OnlineChanged,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    StoreChanged,
    UpdatesArrived,
)
from tally.tui.outbox import Outbox
from tally.tui.retry import Resync, backoff

__all__ = [
    "FLUSH_EVERY",
    "FLUSH_INTERVAL",
    "RETRY_LATER",
    "STORE_PROBE",
    "FlushAt",
    "Inbox",
    "ProbeAfter",
    "ResendAfter",
    "Resync",
]

# An update after a quiet while waits this long for those that come with it (a burst is one batch): a tenth of
# a second reads as at once.
FLUSH_INTERVAL = 1 / 10
# Under a stream of updates, a batch at most this often: the total panel draws no more often than this
# (tui.widgets.total), so smaller batches only cost the dashboard (a message, its handlers and their timers a
# batch: a twentieth of its CPU at 30 updates a second, with batches every tenth of a second).
FLUSH_EVERY = 0.25
# Refusals that say "slow down" (tally.v1's): the add stays pending and goes again after this long.
RETRY_LATER: Mapping[str, float] = {ErrorCode.RATE_LIMITED: 1.0}
# While the store is away, one waiting add goes after this long (then twice as long, up to the cap),
# in case the server never says the store is back (an older server says nothing).
STORE_PROBE = 5.0
STORE_PROBE_CAP = 60.0
AVAILABLE = StoreStatus("available")


@dataclass(frozen=True, slots=True)
class FlushAt:
    """Call :meth:`Inbox.flush` at ``when`` (on the inbox's clock): updates wait for the next repaint."""

    when: float


@dataclass(frozen=True, slots=True)
class ResendAfter:
    """Send add ``op`` again after ``delay`` seconds, in this session (the server said "not now")."""

    op: str
    delay: float


@dataclass(frozen=True, slots=True)
class ProbeAfter:
    """Call :meth:`Inbox.probe` with ``outage`` after ``delay`` seconds: the store has been away a while."""

    delay: float
    outage: int


Timer = FlushAt | ResendAfter | ProbeAfter


class Inbox:
    def __init__(
        self,
        outbox: Outbox,
        post: Callable[[Event], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        flush_interval: float = FLUSH_INTERVAL,
        flush_every: float = FLUSH_EVERY,
        retry_later: Mapping[str, float] = RETRY_LATER,
        store_probe: float = STORE_PROBE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` times the flushes; ``wall`` (Unix time) says since when a store inferred away is away."""
        self.outbox = outbox
        self.post = post
        self.clock = clock
        self.wall = wall
        self.flush_interval = flush_interval
        self.flush_every = flush_every
        self._flushed = -flush_every  # when the last batch went (on ``clock``)
        self.retry_later = retry_later
        self.store_probe = store_probe
        # Where the stream we follow stands (a gap in seq asks for a resync).
        self.ledger, self.epoch, self.seq = "", 0, 0
        # The claim the next hello resumes from: the furthest sealed update seen in this ledger and epoch (a
        # dashboard started later takes the copy the journal kept). A welcome from a store that lost what we saw
        # does not take it back: we keep proving what we saw until the ledger carries on in a new epoch.
        self.point: Resume | None = outbox.pending.resume
        # When we first came (Unix time, as the first welcome listed us): every hello says it again, so that
        # "since" in everyone's people list survives a reconnect or a server restart.
        self.since: float | None = None
        self.store = AVAILABLE
        self.told = True  # the server said the store's state (else it was inferred from a refusal)
        self._outage = 0  # counts the store's absences: a probe timer set in one does nothing in the next
        self._probes = 0  # probes in this absence, for the backoff
        self._updates: list[Update] = []
        self._presence: list[Presence] = []

    def welcomed(self, welcome: Welcome) -> Timer | None:
        """A new session: the stream starts again at the welcome's seq, the store as the welcome says."""
        self.ledger, self.epoch, self.seq = welcome.ledger, welcome.epoch, welcome.seq
        self._flushed = -self.flush_every  # the session's first update goes as soon as after a quiet while
        self._claim(welcome.seq, welcome.total, welcome.fingerprint, welcome.seal)
        if self.since is None:
            me = next((client for client in welcome.clients if client.id == welcome.you), None)
            self.since = self.wall() if me is None else me.since
        return self._store(welcome.store or AVAILABLE, told=welcome.store is not None)

    def resume(self) -> Resume | None:
        """What the next hello asks for: the updates after the last one received, with its sealed claim."""
        return self.point

    def _claim(self, seq: int, total: int, fingerprint: str, seal: str) -> None:
        point = self.point
        ours = point if point is not None and (point.ledger, point.epoch) == (self.ledger, self.epoch) else None
        if ours is not None and ours.seq > seq:
            return  # the server is behind what we saw: keep the claim that proves it
        # A claim without a fingerprint and a seal (an older server) proves nothing: the seq alone, then. Only
        # the last of the updates a server sends together is sealed: until it comes, the sealed claim before
        # stands (a resume from it is sent the few updates after it again, and they are skipped by seq).
        sealed = bool(fingerprint and seal)
        if not sealed and ours is not None and ours.seal:
            return
        self.point = Resume(self.ledger, self.epoch, seq, total if sealed else None, fingerprint if sealed else "",
                            seal if sealed else "")  # fmt: skip
        pending = self.outbox.pending
        if pending.ledger in ("", self.ledger):  # a copy on disk, with the adds for this ledger
            pending.resume = self.point

    def take(self, message: ServerMessage) -> Timer | None:
        """One message, in the order received; raises :class:`Resync` on a gap in seq. Returns a timer to set."""
        if isinstance(message, Update):
            if message.seq <= self.seq:
                return None  # already shown
            if message.seq != self.seq + 1:
                raise Resync(f"expected seq {self.seq + 1}, got {message.seq}")
            self.seq = message.seq
            self._claim(message.seq, message.total, message.fingerprint, message.seal)
            self._updates.append(message)
            if len(self._updates) > 1:
                return None
            return FlushAt(max(self.clock() + self.flush_interval, self._flushed + self.flush_every))
        # Anything else is shown after the updates that came before it.
        self.flush()
        if isinstance(message, Ack):
            add = self.outbox.settle(message.op)
            if add is not None:
                self.post(AddAcknowledged(add, message.seq))
                self.post(PendingChanged())
            if self.outbox.paused and not self.told:
                self._store(AVAILABLE, told=False)  # an add stored: the store is back (a server that never says)
        elif isinstance(message, StoreStatus):
            return self._store(message, told=True)
        elif isinstance(message, Error):
            return self._refused(message)
        elif isinstance(message, Presence):
            self._presence.append(message)  # posted together, at the end of the frame
        elif isinstance(message, Online):
            self.post(OnlineChanged(message))
        elif isinstance(message, ClientsPage):
            self.post(ClientsPageArrived(message))
        elif isinstance(message, HistoryPage):
            self.post(HistoryArrived(message))
        return None

    def end_of_frame(self) -> None:
        """The joins and leaves of one frame go out together."""
        if self._presence:
            self.post(PresenceChanged(self._presence))
            self._presence = []

    def _refused(self, error: Error) -> Timer | None:
        add = None if error.op is None else self.outbox.pending.get(error.op)
        if add is None:
            self.post(ServerRefused(error))
            return None
        if error.code == ErrorCode.UNAVAILABLE:
            # Nothing was stored: the add waits with the others until the store is back. One state, no event each.
            self.outbox.park(add.op)
            if self.store.state == "available":
                return self._store(StoreStatus("unavailable", error.message, self.wall()), told=False)
            return None
        delay = self.retry_later.get(error.code)
        if delay is not None:
            # Nothing was stored; the same op id is safe to send again shortly.
            self.post(ServerRefused(error, add))
            return ResendAfter(add.op, delay)
        self.outbox.settle(add.op)
        self.post(PendingChanged())
        self.post(ServerRefused(error, add, settled=True))
        return None

    def _store(self, status: StoreStatus, *, told: bool) -> Timer | None:
        """The store's state, as said (or inferred): pause or resume the adds, and say so once per change."""
        before, self.store, self.told = self.store, status, told
        if status.state == "available":
            self.outbox.resume()
        else:
            self.outbox.pause()
        if before.state == status.state:
            return None
        self.post(StoreChanged(status, told))
        if status.state == "available":
            return None
        self._outage += 1
        self._probes = 0
        return ProbeAfter(self._probe_delay(), self._outage)

    def probe(self, outage: int) -> Timer | None:
        """The store has been away a while (``outage`` is :class:`ProbeAfter`'s): let one waiting add go; when next."""
        if outage != self._outage or self.store.state == "available":
            return None  # it came back meanwhile
        self.outbox.probe()
        self._probes += 1
        return ProbeAfter(self._probe_delay(), outage)

    def _probe_delay(self) -> float:
        return backoff(self._probes + 1, base=self.store_probe, cap=max(self.store_probe, STORE_PROBE_CAP))

    def flush(self) -> None:
        """Post the updates waiting for the next repaint, now (a pending :class:`FlushAt` then finds none)."""
        if self._updates:
            self._flushed = self.clock()
            self.post(UpdatesArrived(self._updates))
            self._updates = []
