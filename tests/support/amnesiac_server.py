"""``python -m tests.support.amnesiac_server``: the real server with rewind detection and witness repair off.

Only for the checker's negative control (tests/cluster/test_checker.py): it serves whatever
the shared store holds after a rewind, as servers did before the witness, so the same
checks must find the acknowledged adds that the store lost.
"""

from __future__ import annotations

import sys

from tally.server import cli
from tally.server.cluster import Cluster
from tally.server.state import Head
from tally.server.store.base import Loaded
from tally.server.store.redis import RedisStore


async def _trust(self: Cluster, loaded: Loaded) -> str:
    return ""  # whatever the store holds is taken as the truth


def _forget(self: RedisStore, ledger: str, epoch: int, head: Head) -> None:
    pass  # the store is never compared with what this server saw


if __name__ == "__main__":
    setattr(Cluster, "_judge", _trust)  # noqa: B010
    setattr(RedisStore, "saw", _forget)  # noqa: B010
    sys.exit(cli.main())
