"""A resuming dashboard's sealed claim of where it left off, held against the store.

The view judges the claim first (:meth:`tally.server.view.LedgerView.judge`: is it
sealed by this ledger, and does what this server holds agree?); what it cannot decide
from memory is asked of the store, in the background, so that no welcome waits for it.
A store that lost the history a dashboard was told is rewound: with a shared store
the servers repair it (:mod:`tally.server.repair`); a SQLite file is refused until
the operator restores the right one, or, started with ``--accept-ledger-loss``,
carried on in a new epoch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tally.server.health import StoreHealth
from tally.server.protocol import Resume
from tally.server.repair import Repair
from tally.server.state import Claim, Head
from tally.server.store.base import SharedStore, Store
from tally.server.view import LedgerView

__all__ = ["ClaimChecker"]

log = logging.getLogger("tally.server")

# How long a welcome waits for the store's word on a dashboard's claim.
ASK_TIMEOUT = 2.0


class ClaimChecker:
    def __init__(
        self,
        store: Store,
        view: LedgerView,
        health: StoreHealth,
        *,
        repair: Repair | None,
        accept_loss: bool,
        resync: Callable[[str], None],
        ask_timeout: float = ASK_TIMEOUT,
    ) -> None:
        """``repair``: a shared store's; ``resync`` closes every connection (a new epoch: clients start afresh)."""
        self.store = store
        self.view = view
        self.health = health
        self.repair = repair
        self.accept_loss = accept_loss
        self.resync = resync
        self.ask_timeout = ask_timeout
        self.tasks: set[asyncio.Task[None]] = set()

    async def check(self, resume: Resume) -> None:
        judgement = self.view.judge(resume)
        if judgement.claim is None:
            return
        task = asyncio.get_running_loop().create_task(self._check(judgement.rewound, judgement.ask, judgement.claim))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        # The welcome waits for the verdict, briefly: a slow store does not hold a dashboard up for long.
        await asyncio.wait([task], timeout=self.ask_timeout)

    async def _check(self, rewound: str, ask: int | None, claim: Claim) -> None:
        try:
            if not rewound and ask is not None:
                now = await self._head()
                if now is not None and now.seq < claim.head.seq:
                    rewound = f"a dashboard had update {claim.head.seq}, but the store ends at update {now.seq}"
                elif await self.store.digest_at(claim.head.seq) not in (claim.head.digest, None):
                    rewound = f"a dashboard had another history at update {claim.head.seq}"
            if rewound:
                await self._rewound(rewound, claim)
        except Exception as exc:  # the store is away: the next resume asks again
            log.warning("could not check a dashboard's claim (%s)", exc)

    async def _head(self) -> Head | None:
        """The store's head now, if it still holds the ledger and epoch this server serves."""
        if isinstance(self.store, SharedStore):
            now = await self.store.head_now()
            return None if now is None or (now[0], now[1]) != (self.view.id, self.view.epoch) else now[2]
        return self.view.head

    async def _rewound(self, why: str, claim: Claim) -> None:
        if self.repair is not None:
            log.error("%s: the store lost acknowledged history", why, extra={"event": "store"})
            mark = await self.repair.report(why, self.view.seq)
            await self.repair.claim_for(mark, claim, "dashboard")
            self.health.rewound(why)
        elif self.accept_loss:
            epoch = await self.store.start_epoch()
            self.view.epoch = epoch
            log.warning("%s; carrying on from what the database holds, as asked, in epoch %d", why, epoch)
            self.resync(f"the ledger carries on in epoch {epoch}")
        else:
            log.error(
                "%s: the database was restored from an older copy or replaced. Restore the right file, or restart "
                "with --accept-ledger-loss to carry on from this one", why, extra={"event": "store"},
            )  # fmt: skip
            self.health.rewound(why)
