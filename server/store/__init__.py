"""Where the total lives: one small interface, one backend per URL scheme.

``memory://`` keeps nothing; ``sqlite:///path`` (or a plain path) is durable.
A shared backend (Redis) slots in here: the handler never sees which is used.
"""

from __future__ import annotations

from pathlib import Path

from server.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, accept_loss: bool = False) -> Store:
    """Build the store named by ``url``; backends are imported lazily.

    ``accept_loss`` lets a durable store start although its ledger went backwards.
    """
    if url in ("memory://", ":memory:"):
        from server.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite://"):
        url = url.removeprefix("sqlite://")
        # sqlite:///abs/path and sqlite://rel/path both name a file.
    elif "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use memory:// or sqlite:///path")
    from server.store.sqlite import SQLiteStore

    return SQLiteStore(Path(url).expanduser(), accept_loss=accept_loss)
