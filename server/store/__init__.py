"""Where the total lives: one small interface, one backend per URL scheme.

``memory://`` keeps nothing; ``sqlite:///path`` (or a plain path) is durable on
one machine; ``redis://``, ``rediss://`` and ``unix://`` name a Redis shared by
any number of servers. Backends are imported only when named, so Redis's
client is needed only by those who use it. The handler never sees which is used.
"""

from __future__ import annotations

from pathlib import Path

from tally.server.store.base import LedgerLost, Store

__all__ = ["REDIS_SCHEMES", "LedgerLost", "Store", "open_store"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(
    url: str,
    *,
    accept_loss: bool = False,
    retention: float = 86_400.0,
    redis_prefix: str = "tally:",
    redis_no_persistence: bool = False,
) -> Store:
    """Build the store named by ``url``.

    ``accept_loss`` lets a durable store start although its ledger went
    backwards; ``retention`` is how long op ids are kept (Redis expires them).
    """
    if url in ("memory://", ":memory:"):
        from tally.server.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(REDIS_SCHEMES):
        try:
            from tally.server.store.redis import RedisStore
        except ImportError:
            raise ValueError(f"{url!r} needs Redis's client: pip install 'tally-live[redis]'") from None
        return RedisStore(url, prefix=redis_prefix, accept_loss=accept_loss, retention=retention,
                          allow_no_persistence=redis_no_persistence)  # fmt: skip
    if url.startswith("sqlite://"):
        url = url.removeprefix("sqlite://")
        # sqlite:///abs/path and sqlite://rel/path both name a file.
    elif "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use memory://, sqlite:///path or redis://host:port/db")
    from tally.server.store.sqlite import SQLiteStore

    return SQLiteStore(Path(url).expanduser(), accept_loss=accept_loss)
