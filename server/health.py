"""Whether this server can store adds now: one state, owned here, told once per change.

Sans-I/O: the parts that talk to the store (the commit, the cluster's follower, the
repair) report what they find, each under a name of its own; the store is available
when none of them reports a problem, rewound while the ledger is marked rewound, and
unavailable otherwise. Listeners are called once per change of state, never once per
retry, so that dashboards get one ``store`` message each way and the log one line each
way. ``/readyz`` and the metrics read it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tally.server.protocol import StoreStatus
from tally.server.protocol.messages import StoreState

__all__ = ["StoreHealth"]

REWOUND = "rewound"


class StoreHealth:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.status = StoreStatus("available", "", clock())
        self.listeners: list[Callable[[StoreStatus, StoreStatus], None]] = []
        self._problems: dict[str, str] = {}  # by who found them, in the order found

    @property
    def available(self) -> bool:
        return self.status.state == "available"

    @property
    def state(self) -> StoreState:
        return self.status.state

    @property
    def reason(self) -> str:
        return self.status.reason

    def failing(self, source: str) -> bool:
        """Whether ``source`` reports a problem now."""
        return source in self._problems

    def ok(self, source: str = "store") -> None:
        """What ``source`` reported is over (the store answers it again)."""
        if self._problems.pop(source, None) is not None:
            self._changed()

    def failed(self, reason: str, source: str = "store") -> None:
        """``source`` finds the store away for now (down, loading, a disk fault): adds wait, and go again."""
        if self._problems.get(source) != reason:
            self._problems[source] = reason
            self._changed()

    def rewound(self, reason: str) -> None:
        """The store lost acknowledged history: adds are refused until it is repaired."""
        self.failed(reason, REWOUND)

    def repaired(self) -> None:
        """The ledger was repaired (or was found whole after all)."""
        self.ok(REWOUND)

    def _changed(self) -> None:
        if REWOUND in self._problems:
            state: StoreState = "rewound"
            reason = self._problems[REWOUND]
        elif self._problems:
            state, reason = "unavailable", next(iter(self._problems.values()))
        else:
            state, reason = "available", ""
        old = self.status
        if old.state == state:
            if old.reason != reason:  # the same state for another reason: /readyz says the latest, nobody is told
                self.status = StoreStatus(state, reason, old.since)
            return
        self.status = StoreStatus(state, reason, self.clock())
        for listener in self.listeners:
            listener(old, self.status)
