"""Where the total lives: one small interface, one backend per URL scheme.

``memory://`` keeps nothing; ``sqlite:///path`` (or a plain path) is durable on
one machine; ``redis://``, ``rediss://`` and ``unix://`` name a Redis shared by
any number of servers. Backends are imported only when named, so Redis's
client is needed only by those who use it. The handler never sees which is used.
"""

from __future__ import annotations

from pathlib import Path

from tally.server.store.base import LedgerLost, SharedStore, Store

__all__ = ["REDIS_SCHEMES", "LedgerLost", "SharedStore", "Store", "open_store"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def open_store(
    url: str,
    *,
    accept_loss: bool = False,
    retention: float = 86_400.0,
    redis_prefix: str = "tally:",
    redis_no_persistence: bool = False,
    redis_replicas: int = 0,
    redis_replica_timeout: float = 1.0,
) -> Store:
    """Build the store named by ``url``.

    ``accept_loss`` lets a SQLite store start although its ledger went backwards (a shared
    store is repaired from the servers' witnesses instead); ``retention`` is how long op ids
    are kept (Redis expires them); ``redis_replicas``: an add is acknowledged once that many
    replicas have it.
    """
    if url in ("memory://", ":memory:"):
        from tally.server.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(REDIS_SCHEMES):
        try:
            from tally.server.store.redis import RedisStore
        except ImportError:
            raise ValueError(f"{url!r} needs Redis's client: pip install 'tally-live[redis]'") from None
        return RedisStore(url, prefix=redis_prefix, retention=retention, allow_no_persistence=redis_no_persistence,
                          replicas=redis_replicas, replica_timeout=redis_replica_timeout)  # fmt: skip
    if url.startswith("sqlite://"):
        url = url.removeprefix("sqlite://")
        # sqlite:///abs/path and sqlite://rel/path both name a file.
    elif "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use memory://, sqlite:///path or redis://host:port/db")
    from tally.server.store.sqlite import SQLiteStore

    return SQLiteStore(Path(url).expanduser(), accept_loss=accept_loss)
