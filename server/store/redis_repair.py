"""The repair face of the Redis store: the marks and claims with which servers repair a rewound ledger.

What each step means, and in which order the servers take them, is in
:mod:`tally.server.repair`; here are only the keys and the atomic writes:
``rewound`` (why, since when, and the seq the store was found at), ``claims``
(what each server saw), ``lead`` (who leads the repair, with a lease),
``repair`` (the base and the new epoch, set once per round by ``lua/restore.lua``)
and ``repaired`` (which servers have restored what their witness held).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import redis.asyncio as redis
from redis import exceptions as redis_errors

from tally.server.state import Claim, Head, Witnessed
from tally.server.store.base import Restore, RewoundMark, SharedStore, StoreError, StoreUnavailable
from tally.server.store.scripts import lua_script

__all__ = ["RedisRepair", "parse_mark", "parse_restore", "reachable"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="RedisRepair")


def reachable(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Redis's failures as the store's own errors: the server never sees redis-py's exceptions.

    A Redis that does not answer, is loading, or became a read-only replica (a failover) is
    :class:`StoreUnavailable`, worth waiting for; anything else it refuses is a :class:`StoreError`.
    """

    async def guarded(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except redis_errors.BusyLoadingError:
            raise StoreUnavailable(f"{self.url} is loading its data") from None
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise StoreUnavailable(f"{self.url} does not answer ({exc or type(exc).__name__})") from None
        except redis_errors.ReadOnlyError:
            raise StoreUnavailable(f"{self.url} is a read-only replica now (a failover?)") from None
        except redis_errors.RedisError as exc:
            raise StoreError(f"{self.url} refused: {exc}") from None

    return functools.update_wrapper(guarded, method)  # type: ignore[return-value]


def parse_mark(text: str) -> RewoundMark | None:
    """The ``rewound`` key's value: round, since (ms), the seq the store was found at, why (tab-separated)."""
    if not text:
        return None
    round_, since, found, reason = text.split("\t", 3)
    return RewoundMark(round_, int(since) / 1000, int(found), reason)


def parse_restore(fields: Mapping[str, str]) -> Restore | None:
    if "round" not in fields:
        return None
    base = Head(int(fields["total"]), int(fields["seq"]), fields["digest"])
    return Restore(fields["round"], fields["ledger"], int(fields["from_epoch"]), int(fields["epoch"]), base,
                   int(fields["found"]))  # fmt: skip


def _claim_text(claim: Claim) -> str:
    return f"{claim.ledger} {claim.epoch} {claim.head.seq} {claim.head.total} {claim.head.digest}"


def _claim(text: str) -> Claim:
    ledger, epoch, seq, total, digest = text.split(" ")
    return Claim(ledger, int(epoch), Head(int(total), int(seq), digest))


class RedisRepair(SharedStore):
    def __init__(self, url: str, client: redis.Redis, prefix: str) -> None:
        self.url = url
        self.redis = client
        self.prefix = prefix
        self._restore = client.register_script(lua_script("restore.lua"))
        self._finish = client.register_script(lua_script("finish.lua"))

    def key(self, name: str) -> str:
        return self.prefix + name

    @reachable
    async def report_rewound(self, server: str, reason: str, found: int) -> RewoundMark:
        now = int(time.time() * 1000)
        await self.redis.set(self.key("rewound"), f"{server}-{now}\t{now}\t{found}\t{reason}", nx=True)
        mark = await self.rewound()
        return mark if mark is not None else RewoundMark(f"{server}-{now}", now / 1000, found, reason)

    @reachable
    async def rewound(self) -> RewoundMark | None:
        return parse_mark(cast("str | None", await self.redis.get(self.key("rewound"))) or "")

    @reachable
    async def claim(self, server: str, claim: Claim) -> None:
        await self.redis.hset(self.key("claims"), server, _claim_text(claim))

    @reachable
    async def claims(self) -> dict[str, Claim]:
        claims = cast("dict[str, str]", await self.redis.hgetall(self.key("claims")))
        return {server: _claim(text) for server, text in claims.items()}

    @reachable
    async def head_now(self) -> tuple[str, int, Head] | None:
        fields = ("ledger", "epoch", "seq", "total", "digest")
        ledger, epoch, seq, total, digest = cast("list[str]", await self.redis.hmget(self.key("meta"), *fields))
        if ledger is None:
            return None
        return ledger, int(epoch), Head(int(total), int(seq), digest or ledger)

    @reachable
    async def lead_repair(self, server: str, lease: float) -> bool:
        ms = max(1, int(lease * 1000))
        if await self.redis.set(self.key("lead"), server, nx=True, px=ms):
            return True
        if await self.redis.get(self.key("lead")) == server:
            await self.redis.pexpire(self.key("lead"), ms)
            return True
        return False

    @reachable
    async def carry_on(self, mark: RewoundMark, base: Claim, key: str, epoch: int) -> Restore | None:
        keys = [self.key(n) for n in ("meta", "log", "points", "rewound", "repair", "repaired")]
        head = base.head
        args: list[Any] = [mark.round, base.ledger, epoch, head.seq, head.total, head.digest, key, base.epoch,
                           mark.found, repr(time.time())]  # fmt: skip
        if not await self._restore(keys=keys, args=args):
            return None
        return await self.repair()

    @reachable
    async def repair(self) -> Restore | None:
        return parse_restore(cast("dict[str, str]", await self.redis.hgetall(self.key("repair"))))

    @reachable
    async def restore_ops(self, restore: Restore, entries: Sequence[Witnessed], retention: float) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                record = entry.record
                left = int(record.at + retention - now)
                if record.op is None or left <= 0:
                    continue
                undoes = "-" if record.undoes is None else record.undoes
                value = f"{record.seq} {record.amount} {undoes} -"
                pipe.set(self.key(f"op:{record.session or ''}:{record.op}"), value, nx=True, ex=left)
            await pipe.execute()

    @reachable
    async def repaired(self, server: str, restore: Restore, readded: int) -> None:
        await self.redis.hset(self.key("repaired"), server, f"{restore.round} {readded}")

    @reachable
    async def progress(self, restore: Restore) -> dict[str, int]:
        done = cast("dict[str, str]", await self.redis.hgetall(self.key("repaired")))
        return {server: int(text.split(" ")[1]) for server, text in done.items() if text.split(" ")[0] == restore.round}

    @reachable
    async def finish_repair(self, restore: Restore) -> bool:
        keys = [self.key(n) for n in ("rewound", "claims", "lead", "repaired")]
        return bool(await self._finish(keys=keys, args=[restore.round]))
