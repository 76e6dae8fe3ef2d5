"""Many servers, one total: following the shared ledger, presence across servers, and noticing a rewind.

Every server follows the same stream and does the same with what it reads, in
the same order: an update is taken by the ledger (published to its dashboards,
and the adder's ack follows); a presence event changes the roster and is
published too. So dashboards on every server see one order, with one seq, and
one list of who is online. Each update's fingerprint must follow from the one
before (:func:`tally.server.state.chain`): a stream that does not is a ledger
that changed under us, and the follower reloads and decides what it is.

Presence: each server keeps its own clients in the store and beats every
``heartbeat`` seconds; a server whose beat lapses (``ttl``) is reaped by the next
server to beat, which announces its clients as left. So a server killed with
SIGKILL leaves everyone's lists within ttl + heartbeat. A server that was reaped
while cut off announces its clients again when it is back. The beat also checks
the ledger against what this server saw, and drives the repair of a rewind
(:mod:`tally.server.repair`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tally.server.health import StoreHealth
from tally.server.ledger import Ledger
from tally.server.presence import Announcer, Roster
from tally.server.protocol import ClientInfo, Presence
from tally.server.repair import Repair
from tally.server.state import Claim, Head, Record, chain
from tally.server.store.base import Loaded, NoLedger, PresenceEntry, SharedStore, StoreError, StoreUnavailable
from tally.server.tasks import stop_if_cancelled
from tally.server.view import RECENT_KEPT
from tally.server.witness import Mark, Witness

__all__ = ["HEARTBEAT", "SERVER_TTL", "Cluster"]

log = logging.getLogger("tally.server")

HEARTBEAT = 1.0
SERVER_TTL = 5.0
# How long one blocking read waits for the stream.
READ_BLOCK = 1.0
RETRY = 0.5
# The newest state seen is written to the witness at most this often (not fsynced).
NOTE_INTERVAL = 0.2


class Cluster(Announcer):
    """This server's part in a cluster sharing one store."""

    def __init__(
        self,
        store: SharedStore,
        ledger: Ledger,
        roster: Roster,
        publish: Callable[[Presence], None],
        server_id: str,
        witness: Witness,
        repair: Repair,
        *,
        place: str,
        resync: Callable[[str], None],
        ttl: float = SERVER_TTL,
        heartbeat: float = HEARTBEAT,
        retry: float = RETRY,
    ) -> None:
        """``ttl``: how long this server counts as alive after each beat (others reap it after); ``resync`` closes
        every dashboard's connection when the ledger moved to a new epoch, so that each resynchronises."""
        super().__init__(roster, publish)
        self.store = store
        self.ledger = ledger
        self.health: StoreHealth = ledger.health
        self.server_id = server_id
        self.witness = witness
        self.repair = repair
        self.place = place
        self.resync = resync
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.retry = retry
        self.mine: dict[str, ClientInfo] = {}  # this server's clients, as announced
        self.position = "0-0"  # the last stream entry taken
        self.lost = ""  # why the follower must reload before it reads on
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._noted = 0.0
        # What the follower took since the last note, batch by batch with its epoch: noted with its op ids.
        self._unnoted: list[tuple[int, list[Record]]] = []
        self._reannounce = False  # after a reload: say again who our clients are, at the next beat

    async def start(self) -> None:
        await self._reload(first=True)
        await self._beat()
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._beat_forever())]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # redis-py may swallow a cancellation in the middle of a blocking read; the loops also look
        # at _stopping after each read, which returns within READ_BLOCK.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=READ_BLOCK + 1)
        with contextlib.suppress(StoreError, OSError, ConnectionError):
            # Leave at once rather than after the ttl: our clients are gone with us.
            for client_id in list(self.mine):
                await self.leave(client_id)
            await self.store.retire(self.server_id)

    # -- loading, and deciding what a ledger that changed means -------------------------------

    async def _reload(self, *, first: bool = False) -> None:
        try:
            loaded = await self.store.load(recent=RECENT_KEPT)
        except NoLedger:
            await self._gone()
            raise
        refused = await self._judge(loaded)
        if refused:
            self.lost = refused
            return
        old_epoch = self.ledger.view.epoch
        self.ledger.view.load(loaded.snapshot)
        self.ledger.wake_readers()
        self.position = loaded.position
        self.store.saw(self.ledger.view.id, self.ledger.view.epoch, self.ledger.view.head)
        self.roster.reset(loaded.clients)
        for info in self.mine.values():  # ours are here whatever the store's list says; it is told again below
            self.roster.join(info)
        self._reannounce = bool(self.mine)
        self.lost = ""
        if not first and loaded.snapshot.epoch != old_epoch:
            self.resync(f"the ledger was repaired and carries on in epoch {loaded.snapshot.epoch}")
        if loaded.repair is not None and loaded.repair.epoch == loaded.snapshot.epoch:
            await self.repair.catch_up(loaded.repair)
        self.health.repaired()
        self.health.ok("follower")

    async def _gone(self) -> None:
        """No ledger in the store: if this machine saw one there, it was lost (FLUSHALL while no server ran to
        notice): mark it rewound and take part in its repair; raises StoreUnavailable until it is back."""
        mark = await self.store.rewound()
        if mark is None:
            known = await self.witness.marks(self.place)
            if not known:
                return  # a store that never held a ledger this machine saw: NoLedger stands
            seen = known[0]
            why = f"ledger {seen.ledger} is gone from the store (this machine saw it at update {seen.head.seq})"
            log.error("%s: rebuilding it from the witness", why, extra={"event": "store"})
            mark = await self.repair.report(why, 0)
        if not self.ledger.view.key:
            known = await self.witness.marks(self.place)
            self.ledger.view.key = known[0].key if known else ""
        await self.repair.step(mark, lease=self.ttl * 2)
        raise StoreUnavailable(f"the ledger is being repaired ({mark.reason})")

    async def _judge(self, loaded: Loaded) -> str:
        """Why ``loaded`` must not be served ("" if it may): the ledger is marked rewound, or is less than was seen."""
        if loaded.rewound is not None:
            self.health.rewound(loaded.rewound.reason)
            return loaded.rewound.reason
        snapshot, view = loaded.snapshot, self.ledger.view
        seen = view.claim() if view.id else None
        if seen is None:
            mark = await self.witness.mark(snapshot.ledger)
            seen = None if mark is None else mark_claim(mark)
            if mark is not None and not view.key:
                view.key = mark.key
        if seen is None or snapshot.epoch > seen.epoch:
            return ""  # nothing known, or a repair moved the ledger on
        why = ""
        if snapshot.ledger != seen.ledger:
            why = f"the store now holds another ledger ({snapshot.ledger}, not {seen.ledger})"
        elif snapshot.epoch < seen.epoch:
            why = f"the store is back at epoch {snapshot.epoch}, from before a repair (epoch {seen.epoch})"
        elif snapshot.head.seq < seen.head.seq:
            why = f"the store ends at update {snapshot.head.seq}, but update {seen.head.seq} was seen"
        elif await self.store.digest_at(seen.head.seq) not in (seen.head.digest, None):
            why = f"the store holds another history at update {seen.head.seq}"
        if why:
            log.error("%s: refusing adds until it is repaired", why, extra={"event": "store"})
            self.health.rewound(why)
            await self.repair.report(why, snapshot.head.seq)
        return why

    # -- announcing -----------------------------------------------------------------------------

    async def join(self, info: ClientInfo) -> None:
        self.mine[info.id] = info
        try:
            await self.store.announce(self.server_id, "joined", info)
        except (StoreError, OSError, ConnectionError) as exc:
            log.error("could not announce a join (%s); it will be when the store is back", exc)

    async def leave(self, client_id: str) -> ClientInfo | None:
        info = self.mine.pop(client_id, None)
        if info is not None:
            try:
                await self.store.announce(self.server_id, "left", info)
            except (StoreError, OSError, ConnectionError) as exc:
                log.error("could not announce a leave (%s); others will see it when this server is reaped", exc)
        return info

    async def rename(self, client_id: str, name: str) -> None:
        old = self.mine.get(client_id)
        if old is None:
            return
        info = self.mine[client_id] = ClientInfo(old.id, name, old.since, old.added, old.address, old.tag)
        with contextlib.suppress(StoreError, OSError, ConnectionError):
            await self.store.announce(self.server_id, "renamed", info)

    # -- following ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        while not self._stopping:
            try:
                if self.lost:
                    await self._reload()
                    if self.lost:  # still not servable (rewound): look again in a while
                        await asyncio.sleep(self.retry * 2)
                    continue
                self.position, entries = await self.store.read(self.position, block=READ_BLOCK)
            except Exception as exc:
                stop_if_cancelled(exc)
                if not isinstance(exc, StoreError | OSError | ConnectionError):
                    log.exception("could not read the shared ledger")  # a bug, or data we cannot read
                self._lose(str(exc) or type(exc).__name__)
                await asyncio.sleep(self.retry)
                continue
            try:
                self._take(entries)
            except Exception as exc:
                # Never end this loop silently: without it this server would go on taking adds
                # and never publish them. Start again from a snapshot.
                log.exception("could not publish what the shared ledger holds; reloading")
                self._lose(f"could not publish updates ({exc})")
                await asyncio.sleep(self.retry)

    def _lose(self, why: str) -> None:
        self.lost = why or "the store is unreachable"
        self.health.failed(self.lost, "follower")
        self.ledger.wake_readers()

    def _take(self, entries: list[Record | PresenceEntry]) -> None:
        records: list[Record] = []
        view = self.ledger.view
        head = view.head
        for entry in entries:
            if isinstance(entry, PresenceEntry):
                if records:  # updates before this event go out before it
                    self._publish(records)
                    records = []
                self._take_presence(entry)
                continue
            if entry.seq <= head.seq:
                continue
            if entry.seq != head.seq + 1 or (
                entry.digest
                and chain(head.digest, entry.seq, entry.session, entry.op, entry.amount, entry.total) != entry.digest
            ):
                # A gap (the stream was trimmed past us, or Redis lost entries), or a history that does not
                # follow from ours: start again from a snapshot, which says which it is.
                self._publish(records)
                self.lost = f"the stream does not follow from update {head.seq}; reloading"
                log.warning("%s", self.lost)
                return
            records.append(entry)
            head = Head(entry.total, entry.seq, entry.digest or head.digest)
        self._publish(records)

    def _publish(self, records: list[Record]) -> None:
        if not records:
            return
        self.ledger.take(records)
        view = self.ledger.view
        self.store.saw(view.id, view.epoch, view.head)
        self._unnoted.append((view.epoch, records))
        now = time.monotonic()
        if now - self._noted >= NOTE_INTERVAL:
            self._noted = now
            asyncio.get_running_loop().create_task(self._note())

    async def _note(self) -> None:
        view = self.ledger.view
        taken, self._unnoted = self._unnoted, []
        seen = [record for epoch, batch in taken if epoch == view.epoch for record in batch]  # a repair moves on
        try:
            await self.witness.note(view.id, view.epoch, view.head, view.key, self.place, seen)
        except Exception as exc:  # only the check after a crash of this process is weaker for it
            log.warning("could not note update %d in the witness log (%s)", view.seq, exc)

    def _take_presence(self, entry: PresenceEntry) -> None:
        info = entry.client
        if entry.event == "left":
            presence = self.roster.leave(info.id)
        elif entry.event == "renamed" and info.id in self.roster:
            presence = self.roster.rename(info.id, info.name)
        else:
            presence = self.roster.join(info)
        if presence is not None:
            self.publish(presence)

    # -- staying alive --------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
            except Exception as exc:
                stop_if_cancelled(exc)
                if not isinstance(exc, StoreError | OSError | ConnectionError):
                    log.exception("the heartbeat failed")
                self._lose(str(exc) or type(exc).__name__)

    async def _beat(self) -> None:
        beat = await self.store.beat(self.server_id, self.ttl)
        for server in beat.reaped:
            log.info("server %s stopped beating: its clients left", server)
        if (not beat.alive or self._reannounce) and self.mine:
            # We were reaped while cut off, or the store came back (perhaps older, perhaps emptied): whatever
            # its list of our clients says now, they are these.
            if not beat.alive:
                log.warning("this server was taken for dead; announcing its %d clients again", len(self.mine))
            await self.store.announce_all(self.server_id, list(self.mine.values()))
        self._reannounce = False
        if beat.rewound is not None:
            self.health.rewound(beat.rewound.reason)
            await self.repair.step(beat.rewound, lease=self.ttl * 2)
        elif beat.epoch != self.ledger.view.epoch or self.health.state == "rewound":
            self.lost = self.lost or "the ledger moved on; reloading"  # a repair finished: load the new epoch
            self.ledger.wake_readers()


def mark_claim(mark: Mark) -> Claim:
    return Claim(mark.ledger, mark.epoch, mark.head)
