"""``tally-server init`` and ``tally-server restore``: what an operator does to a store, on purpose.

A server never creates a ledger as a side effect of starting (a start that refuses
creates nothing), so a new Redis ledger is made by ``init``, like ``initdb``; and
a ledger that Redis lost entirely while no server was running to repair it is
rebuilt by ``restore`` from this machine's witness log (:mod:`tally.server.witness`).
The local SQLite quick start needs neither: its server creates its own file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tally.server.config import ServerConfig, default_db_path
from tally.server.repair import Repair
from tally.server.store import open_store
from tally.server.store.address import place, shown
from tally.server.store.base import LedgerLost, SharedStore, StoreError, StoreUnavailable
from tally.server.store.sqlite import SQLiteStore, integrity
from tally.server.view import LedgerView
from tally.server.witness import Witness, default_witness_path

__all__ = ["COMMANDS", "check_ledger", "command_config", "init_ledger", "restore_ledger"]

T = TypeVar("T")

log = logging.getLogger("tally.server")

# How long init waits for a Redis that does not answer yet (one just started in the background).
INIT_WAIT = 10.0


async def _patiently(work: Callable[[], Awaitable[T]], timeout: float) -> T:  # noqa: ASYNC109 (a deadline over tries)
    """``work()``, tried again while the store does not answer, for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await work()
        except StoreUnavailable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)


async def init_ledger(config: ServerConfig) -> int:
    """Create a new, empty ledger where ``config.db`` points; fail (changing nothing) if one is there."""
    store = open_store(config.db, redis_prefix=config.redis_prefix, redis_no_persistence=config.redis_no_persistence)
    try:
        if isinstance(store, SharedStore):
            ledger = await _patiently(store.create, config.store_timeout or INIT_WAIT)
        elif isinstance(store, SQLiteStore):
            if store.path.exists():
                raise LedgerLost(f"{store.path} already exists: nothing was changed")
            ledger = (await store.open(recent=0)).ledger
        else:
            raise StoreError(f"{shown(config.db)} keeps nothing: there is no ledger to create")
    finally:
        await store.close()
    log.info("created ledger %s in %s", ledger, shown(config.db))
    return 0


async def restore_ledger(config: ServerConfig) -> int:
    """Rebuild the ledger that this machine's witness remembers at ``config.db``, in a new epoch."""
    witness = Witness(Path(config.witness) if config.witness else default_witness_path())
    store = open_store(config.db, redis_prefix=config.redis_prefix, redis_no_persistence=config.redis_no_persistence)
    try:
        if not isinstance(store, SharedStore):
            raise StoreError("restore rebuilds a shared (Redis) ledger; a SQLite file is restored from a backup")
        where = place(config.db, config.redis_prefix)
        marks = await witness.marks(where)
        if not marks:
            raise StoreError(f"this machine's witness log ({witness.path}) knows no ledger at {where}")
        mark = marks[0]
        now = await store.head_now()
        if now is not None and now[0] != mark.ledger:
            raise LedgerLost(
                f"{shown(config.db)} holds another ledger ({now[0]}, not {mark.ledger}): nothing was changed"
            )
        if now is not None and await store.rewound() is None and (now[1], now[2].seq) >= (mark.epoch, mark.head.seq):
            log.info(
                "%s holds ledger %s with all this machine saw of it: nothing to restore", shown(config.db), mark.ledger
            )
            return 0
        view = LedgerView()
        view.id, view.epoch, view.key, view.head = mark.ledger, mark.epoch, mark.key, mark.head
        repair = Repair(
            store, witness, view, f"restore-{os.getpid()}", place=where, retention=config.limits.retention,
            grace=0.0, wait_for=0.0, accept_loss=False,
        )  # fmt: skip
        rewound = await repair.report("rebuilt by tally-server restore", 0 if now is None else now[2].seq)
        while await store.rewound() is not None:
            await repair.step(rewound, lease=10.0)
            rewound = await store.rewound() or rewound
        restored = await store.repair()
        if restored is not None:
            log.info(
                "restored ledger %s at update %d (total %d) in epoch %d from %s",
                restored.ledger, restored.base.seq, restored.base.total, restored.epoch, witness.path,
            )  # fmt: skip
        return 0
    finally:
        await store.close()
        await witness.close()


async def check_ledger(config: ServerConfig) -> int:
    """SQLite's full integrity check of ``config.db`` (the check at every start is the quick one): 0 if sound."""
    store = open_store(config.db)
    if not isinstance(store, SQLiteStore):
        await store.close()
        raise StoreError(f"{shown(config.db)} is not a SQLite file: only those are checked this way")
    await store.close()
    found = await asyncio.to_thread(integrity, store.path)
    if found == ["ok"]:
        log.info("%s: sound (SQLite's integrity_check found nothing wrong)", store.path)
        return 0
    for line in found[:20]:
        log.error("%s: %s", store.path, line)
    if len(found) > 20:
        log.error("%s: … and %d more problems", store.path, len(found) - 20)
    log.error("%s is damaged: restore a good copy", store.path)
    return 1


@dataclasses.dataclass(frozen=True)
class Command:
    """One of ``tally-server``'s commands besides serving: what it does, and its own options."""

    run: Callable[[ServerConfig], Coroutine[Any, Any, int]]
    help: str
    options: tuple[str, ...]  # of: db, prefix, witness, timeout

    def parser(self, name: str) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"tally-server {name}", description=self.help)
        if name == "check":
            parser.add_argument("--db", default=str(default_db_path()), help="the SQLite file (default: %(default)s)")
        else:
            parser.add_argument("--db", required=True, help="the store: redis://…, rediss://…, unix://…, "
                                "redis+sentinel://host:port,…/service (init also takes a SQLite path)")  # fmt: skip
        if "prefix" in self.options:
            parser.add_argument("--redis-prefix", default="tally:", metavar="PREFIX",
                                help="the prefix of the ledger's keys (default: %(default)s)")  # fmt: skip
            parser.add_argument("--redis-no-persistence", action="store_true",
                                help="accept a Redis that keeps no append-only file")  # fmt: skip
        if "witness" in self.options:
            parser.add_argument(
                "--witness",
                metavar="PATH",
                help="this machine's witness log (default: witness.db in the user state directory)",
            )
        if "timeout" in self.options:
            parser.add_argument(
                "--store-timeout",
                type=float,
                metavar="SECONDS",
                help=f"how long to wait for a store that does not answer (default: {INIT_WAIT:g})",
            )
        parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        parser.add_argument("--log-format", default="human", choices=["human", "json"])
        return parser


def command_config(args: argparse.Namespace) -> ServerConfig:
    """The settings a command's options give (the rest at their defaults)."""
    return ServerConfig(
        db=args.db,
        redis_prefix=getattr(args, "redis_prefix", "tally:"),
        redis_no_persistence=getattr(args, "redis_no_persistence", False),
        witness=getattr(args, "witness", None),
        store_timeout=getattr(args, "store_timeout", None),
    )


COMMANDS = {
    "init": Command(init_ledger, "Create a new, empty ledger (a server never creates one by itself); "
                    "fail, changing nothing, if one is there.", ("prefix", "timeout")),
    "restore": Command(restore_ledger, "Rebuild a ledger that Redis lost entirely while no server ran, from "
                       "this machine's witness log, in a new epoch.", ("prefix", "witness")),
    "check": Command(check_ledger, "SQLite's full integrity check of the database (the check at every start is the "
                     "quick one): exit 0 sound, 1 damaged.", ()),
}  # fmt: skip
