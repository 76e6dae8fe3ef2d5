"""Whether this server can store adds now: one state, owned here, told once per change.

Sans-I/O: the ledger, the cluster and the repair report what they find; this says
what it means (available, unavailable with a reason, rewound) and calls its
listeners once per change of state, never once per retry, so that dashboards get
one ``store`` message each way and the log one line each way. ``/readyz`` and the
metrics read it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tally.server.protocol import StoreStatus
from tally.server.protocol.messages import StoreState

__all__ = ["StoreHealth"]


class StoreHealth:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.status = StoreStatus("available", "", clock())
        self.listeners: list[Callable[[StoreStatus, StoreStatus], None]] = []

    @property
    def available(self) -> bool:
        return self.status.state == "available"

    @property
    def state(self) -> StoreState:
        return self.status.state

    @property
    def reason(self) -> str:
        return self.status.reason

    def ok(self) -> None:
        """Adds can be stored (again)."""
        self._become("available", "")

    def failed(self, reason: str) -> None:
        """The store is away for now (down, loading, a disk fault): adds wait, and go again when it is back."""
        if self.status.state != "rewound":  # a rewind is repaired before anything else
            self._become("unavailable", reason)

    def rewound(self, reason: str) -> None:
        """The store lost acknowledged history: adds are refused until it is repaired."""
        self._become("rewound", reason)

    def _become(self, state: StoreState, reason: str) -> None:
        old = self.status
        if old.state == state:
            return  # the same state for another reason, or a retry: nothing new to tell
        self.status = StoreStatus(state, reason, self.clock())
        for listener in self.listeners:
            listener(old, self.status)
