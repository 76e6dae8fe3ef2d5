"""Repairing a shared ledger that the store rewound: no acknowledged add lost, no seq reused.

Redis loses acknowledged writes the way real deployments fail: a backup restored, a
lagging replica promoted, ``FLUSHALL``, keys deleted. Whoever notices first (a
server's heartbeat or commit, its follower, a dashboard's sealed resume) marks the
ledger *rewound*, and every server refuses adds from then on. Then, on each
heartbeat, every server takes these steps (each one idempotent, so that servers
killed in the middle change nothing):

1. **claim**: post the newest state it saw (ledger, epoch, seq, total, fingerprint);
2. **lead**: one server takes a lease; once the others have had time to claim
   (``grace``), it carries the ledger on from the newest claim, in a new epoch
   (``lua/restore.lua``): nothing any server saw is lost from the total, and no seq
   of the old epoch names a different add in the new one;
3. **restore**: every server, from its witness (:mod:`tally.server.witness`), makes the
   op ids of the adds it acknowledged up to that state known again (so that their
   resends stay duplicates) and applies again, by op id, the ones after it;
4. **finish**: once every claimant has restored (or ``wait_for`` passed), the leader
   clears the mark, logs "restored N acknowledged adds that the store had lost", and
   every server loads the new epoch; dashboards resynchronise from a snapshot.

A server that was away during a repair restores what its witness holds when it comes
back (:meth:`Repair.catch_up`). What cannot be repaired is said plainly in the docs:
adds acknowledged by a server whose witness is lost too.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tally.server.state import Applied, Claim, Witnessed
from tally.server.store.base import Restore, RewoundMark, SharedStore

if TYPE_CHECKING:
    from tally.server.view import LedgerView
    from tally.server.witness import Witness

__all__ = ["Repair", "choose_base"]

log = logging.getLogger("tally.server")

# Adds applied again in one batch.
BATCH = 500


def choose_base(claims: Mapping[str, Claim], store: Claim | None, *, accept_loss: bool) -> Claim | None:
    """The state to carry the ledger on from: the newest claim of the ledger the store (or most claims) name.

    None when nobody claims anything: then only an operator may accept the loss
    (``accept_loss``: carry on from what the store holds).
    """
    if store is not None:
        ledger = store.ledger
    elif claims:
        ledger = Counter(claim.ledger for claim in claims.values()).most_common(1)[0][0]
    else:
        return None
    mine = [claim for claim in claims.values() if claim.ledger == ledger]
    if not mine:
        return store if accept_loss else None
    return max(mine, key=lambda claim: (claim.epoch, claim.head.seq))


class Repair:
    """This server's part in repairing a rewound shared ledger (see the module's docstring)."""

    def __init__(
        self,
        store: SharedStore,
        witness: Witness,
        view: LedgerView,
        server_id: str,
        *,
        place: str,
        retention: float,
        grace: float,
        wait_for: float,
        accept_loss: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``place`` names the store (URL and prefix) for the witness; ``grace``: how long the leader lets others
        claim; ``wait_for``: how long it waits for them to restore."""
        self.store = store
        self.witness = witness
        self.view = view
        self.server_id = server_id
        self.place = place
        self.retention = retention
        self.grace = grace
        self.wait_for = wait_for
        self.accept_loss = accept_loss
        self.clock = clock
        self._claimed = ""  # the round this server has claimed for
        self._reported = ""  # the round this server has said it repaired
        self._stuck = ""  # the round this server said it cannot repair
        self._planned: dict[str, float] = {}  # rounds this server saw planned, and when

    async def report(self, reason: str, found: int) -> RewoundMark:
        """Mark the ledger rewound (the first report wins) and claim at once."""
        mark = await self.store.report_rewound(self.server_id, reason, found)
        await self._claim(mark)
        return mark

    async def claim_for(self, mark: RewoundMark, claim: Claim, source: str) -> None:
        """Post a claim on behalf of a dashboard whose sealed resume showed history the store lost."""
        await self.store.claim(f"{self.server_id}/{source}", claim)

    async def step(self, mark: RewoundMark, lease: float) -> None:
        """One heartbeat's worth of the repair."""
        await self._claim(mark)
        restore = await self.store.repair()
        current = restore if restore is not None and restore.round == mark.round else None
        leading = await self.store.lead_repair(self.server_id, lease)
        if leading and current is None:
            if self.clock() - mark.since < self.grace:
                return  # let the others claim first
            current = await self._plan(mark)
            if current is None:
                return
        if current is None:
            return
        self._planned.setdefault(current.round, self.clock())
        if self._reported != current.round:
            # The witness is the machine's: another server of this machine may have restored it already.
            done = await self.witness.has_repaired(current.ledger, current.round)
            readded = 0 if done else await self._restore(current, during_repair=True)
            await self.store.repaired(self.server_id, current, readded)
            self._reported = current.round
        if leading:
            await self._finish(current)

    async def catch_up(self, restore: Restore) -> None:
        """Back after a repair this server missed: restore what its witness held then (adds are taken again)."""
        if await self.witness.has_repaired(restore.ledger, restore.round):
            return
        readded = await self._restore(restore, during_repair=False)
        if readded:
            log.warning(
                "restored %d acknowledged add(s) from this server's witness that the store had lost", readded,
                extra={"event": "store"},
            )  # fmt: skip

    async def _claim(self, mark: RewoundMark) -> None:
        if self._claimed == mark.round:
            return
        claim = self.view.claim()
        if claim.ledger:
            # The op ids of what this server saw up to its claim, kept first: the ledger may be carried on from it.
            view = self.view
            await self.witness.note(view.id, view.epoch, view.head, view.key, self.place, list(view.recent))
            await self.store.claim(self.server_id, claim)
        # What this machine's witness saw may be newer (a server that died here), or all there is (one starting).
        # It is asked by ledger, whichever URL named the store then; by this URL only if the store holds none.
        now = None if claim.ledger else await self.store.head_now()
        ledger = claim.ledger or (now[0] if now is not None else "")
        if ledger:
            witnessed = await self.witness.mark(ledger)
        else:
            known = await self.witness.marks(self.place)
            witnessed = known[0] if known else None
        if witnessed is not None and (witnessed.epoch, witnessed.head.seq) > (claim.epoch, claim.head.seq):
            kept = Claim(witnessed.ledger, witnessed.epoch, witnessed.head)
            await self.store.claim(f"{self.server_id}/witness", kept)
        self._claimed = mark.round

    async def _plan(self, mark: RewoundMark) -> Restore | None:
        now = await self.store.head_now()
        store_claim = None if now is None else Claim(*now)
        base = choose_base(await self.store.claims(), store_claim, accept_loss=self.accept_loss)
        if base is None:
            if self._stuck != mark.round:
                self._stuck = mark.round
                log.error(
                    "the ledger is marked rewound (%s), and no server remembers it: waiting for one that does, or "
                    "restart a server with --accept-ledger-loss to carry on from what the store holds", mark.reason,
                )  # fmt: skip
            return None
        if store_claim is not None and await self._holds(store_claim, base):
            log.warning("the ledger was marked rewound (%s), but the store holds everything seen", mark.reason)
            restore = Restore(mark.round, base.ledger, base.epoch, base.epoch, base.head, store_claim.head.seq)
            await self.store.finish_repair(restore)
            return None
        epoch = max(base.epoch, store_claim.epoch if store_claim is not None else 0) + 1
        carried = await self.store.carry_on(mark, base, self.view.key, epoch)
        if carried is not None:
            log.warning(
                "the store lost acknowledged history (%s): carrying ledger %s on from update %d (total %d) in epoch "
                "%d", mark.reason, base.ledger, base.head.seq, base.head.total, epoch, extra={"event": "store"},
            )  # fmt: skip
        return carried

    async def _holds(self, store: Claim, base: Claim) -> bool:
        """Does the store, as it is, hold the history of ``base``?"""
        if (store.ledger, store.epoch) != (base.ledger, base.epoch) or store.head.seq < base.head.seq:
            return False
        return await self.store.digest_at(base.head.seq) in (base.head.digest, None)

    async def _restore(self, restore: Restore, *, during_repair: bool) -> int:
        """Op ids of this witness's adds up to the base known again; the adds after it applied again. How many."""
        entries = await self.witness.entries(restore.ledger, restore.from_epoch)
        kept = [entry for entry in entries if entry.record.seq <= restore.base.seq]
        again = [entry for entry in entries if entry.record.seq > restore.base.seq]
        await self.store.restore_ops(restore, kept, self.retention)
        readded = 0
        apply = self.store.reapply if during_repair else self.store.apply
        for start in range(0, len(again), BATCH):
            chunk = again[start : start + BATCH]
            outcomes = await apply([entry.request() for entry in chunk], at=self.clock())
            applied = [
                Witnessed(restore.epoch, outcome.record, entry.undo)
                for entry, outcome in zip(chunk, outcomes, strict=True)
                if isinstance(outcome, Applied)
            ]
            readded += len(applied)
            await self.witness.record(restore.ledger, self.view.key, self.place, applied)
        await self.witness.repaired(restore.ledger, restore.round)
        return readded

    async def _finish(self, restore: Restore) -> None:
        claimants = {server.split("/")[0] for server in await self.store.claims()}
        progress = await self.store.progress(restore)
        waited = self.clock() - self._planned.get(restore.round, self.clock())
        if not claimants <= progress.keys() and waited < self.wait_for:
            return
        if await self.store.finish_repair(restore):
            lost = max(0, restore.base.seq - restore.found) + sum(progress.values())
            missing = sorted(claimants - progress.keys())
            log.warning(
                "restored %d acknowledged add(s) that the store had lost; ledger %s carries on in epoch %d%s",
                lost, restore.ledger, restore.epoch,
                f" (servers {', '.join(missing)} did not answer: they restore theirs when back)" if missing else "",
                extra={"event": "store"},
            )  # fmt: skip
