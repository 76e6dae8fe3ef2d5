"""``python -m tests.support.forgetful_server``: the real server with op-id deduplication switched off.

Only for the crash test's negative control, which must show that the same
checks catch double counting when nothing prevents it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tally.server import app, cli
from tally.server.state import AddRequest, Outcome
from tally.server.store import REDIS_SCHEMES, Store
from tally.server.store.sqlite import SQLiteStore


class ForgetfulStore(SQLiteStore):
    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await super().apply([dataclasses.replace(r, session=None, op=None) for r in batch], at=at)


def forgetful(url: str, **options: Any) -> Store:
    if url.startswith(REDIS_SCHEMES):
        from tally.server.store.redis import RedisStore

        class ForgetfulRedisStore(RedisStore):
            async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
                return await super().apply([dataclasses.replace(r, session=None, op=None) for r in batch], at=at)

        return ForgetfulRedisStore(url, prefix=options.get("redis_prefix", "tally:"), retention=86_400.0)
    return ForgetfulStore(Path(url))


if __name__ == "__main__":
    # The server builds its store from --db through this name; swap in the forgetful one.
    setattr(app, "open_store", forgetful)  # noqa: B010
    sys.exit(cli.main())
