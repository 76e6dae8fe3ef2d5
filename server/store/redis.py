"""The shared store: one ledger in Redis, served by any number of tally-server processes.

Every batch of adds is one Lua script (``lua/apply.lua``) that runs the rule of
:func:`server.state.apply_batch` atomically, so every server sees one order
and one seq. Applied updates go into a capped stream (``<prefix>log``) whose
entry ids are the seqs; every server follows that stream and broadcasts what
it reads, its own adds included (see :mod:`server.cluster`). Op ids are
remembered for the retention window with an expiry; each session's
contribution and one point a second of the total are kept beside them.

Keys, under a prefix (default ``tally:``) so several tallies can share a Redis:
``meta`` (hash: ledger, epoch, seq, total), ``log`` (stream), ``op:<session>:<op>``,
``added`` and ``seen`` (hashes by session), ``points`` (sorted set by time),
``servers`` and ``clients:<server>`` (presence).

A server remembers, in a small file of its own, the last seq it saw for this
Redis and prefix; a Redis that comes back with less (restored from an older
file, or empty) is refused until an operator says otherwise, instead of
silently starting a new, empty ledger.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import platformdirs
import redis.asyncio as redis
from redis.exceptions import ResponseError

from tally.server.protocol import ErrorCode, HistoryPoint
from tally.server.state import AddRequest, Applied, Duplicate, Head, Outcome, Record, Refused, Snapshot
from tally.server.store.base import LedgerLost, Store

__all__ = ["STREAM_LENGTH", "RedisStore", "StoreChanged", "lua_script", "record_from"]

log = logging.getLogger("tally.server")

# Stream entries kept: enough for every server to follow, and for dashboards to resume.
STREAM_LENGTH = 100_000
# The last seq seen is written to the sidecar at most this often.
SIDECAR_INTERVAL = 0.2


def lua_script(name: str) -> str:
    """One of the Lua scripts beside this module."""
    return resources.files("tally.server.store").joinpath("lua", name).read_text()


class StoreChanged(Exception):
    """The ledger in Redis is not the one this server was serving (lost, replaced or reset)."""


def record_from(entry_id: str, fields: dict[str, str]) -> Record:
    """The record an update entry of the stream stands for.

    An update entry holds its record in one field, ``r``: at, amount, total, name, client,
    session, op, undoes and the session's contribution, each followed by a NUL but the last
    (one field, not nine: every server parses every entry). Entries written before that kept
    them as fields of their own, and are read too.
    """
    packed = fields.get("r")
    if packed is None:
        at, amount, total, name, client = (
            fields["at"],
            fields["amount"],
            fields["total"],
            fields["name"],
            fields["client"],
        )
        session, op, undoes = fields["session"], fields["op"], fields["undoes"]
    else:
        at, amount, total, name, client, session, op, undoes, _ = packed.split("\0")
    return Record(
        seq=int(entry_id.split("-", 1)[0]),
        at=float(at),
        amount=int(amount),
        total=int(total),
        name=name,
        client=client,
        session=session or None,
        op=op or None,
        undoes=int(undoes) if undoes else None,
    )


class RedisStore(Store):
    """A ledger in Redis; ``url`` is ``redis://``, ``rediss://`` or ``unix://`` (redis-py's forms)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tally:",
        accept_loss: bool = False,
        allow_no_persistence: bool = False,
        sidecar_dir: Path | None = None,
        retention: float = 86_400.0,
    ) -> None:
        self.url = url
        self.retention = retention
        self.prefix = prefix
        self.accept_loss = accept_loss
        self.allow_no_persistence = allow_no_persistence
        digest = hashlib.sha256(f"{url}\0{prefix}".encode()).hexdigest()[:16]
        directory = sidecar_dir or platformdirs.user_state_path("tally")
        self.sidecar = directory / f"redis-{digest}.ledger"
        self.redis: redis.Redis = redis.from_url(url, decode_responses=True, health_check_interval=5)
        self.ledger = ""
        self.seen = 0  # the last seq this server published: Redis must never hold less
        self._saved_at = float("-inf")
        self._apply = self.redis.register_script(lua_script("apply.lua"))
        self._load = self.redis.register_script(lua_script("load.lua"))
        self._checked = False

    def key(self, name: str) -> str:
        return self.prefix + name

    # -- opening -------------------------------------------------------------------

    async def open(self, *, recent: int) -> Snapshot:
        snapshot, _, _ = await self.load(recent=recent)
        return snapshot

    async def load(self, *, recent: int) -> tuple[Snapshot, str, list[str]]:
        """The snapshot, the stream id to follow from, and the clients of live servers (as JSON)."""
        # Read before Redis: other servers on this machine keep writing the file, and what
        # they wrote before this load can only be at or below what Redis holds now.
        saw = _read_sidecar(self.sidecar)
        if not self._checked:
            await self._check_persistence()
            await self._create_if_missing()
        meta_flat, last_id, entries, clients, added_flat = await self._load(
            keys=[self.key("meta"), self.key("log"), self.key("servers"), self.key("added")],
            args=[self.prefix, recent],
        )
        meta = dict(zip(meta_flat[::2], meta_flat[1::2], strict=True))
        if "ledger" not in meta:
            raise StoreChanged(f"the ledger is gone from {self.url} (prefix {self.prefix!r})")
        head = Head(int(meta["total"]), int(meta["seq"]))
        if not self._checked:
            if self._check_sidecar(saw, meta["ledger"], head.seq):
                meta["epoch"] = str(await self.bump_epoch())
            self._checked = True
        elif meta["ledger"] != self.ledger:
            raise StoreChanged(f"{self.url} now holds ledger {meta['ledger']}, not {self.ledger}")
        elif head.seq < self.seen:
            # Same ledger, fewer updates: Redis came back from an older file (or a lagging replica
            # took over). Taking it would drop acknowledged adds and reuse seqs dashboards hold.
            raise StoreChanged(
                f"{self.url} holds ledger {self.ledger} at update {head.seq}, but this server saw update "
                f"{self.seen}: Redis lost acknowledged adds. Restore it, or restart the servers with "
                "--accept-ledger-loss to carry on from there"
            )
        self.ledger = meta["ledger"]
        records = []
        for entry_id, flat in reversed(entries):
            fields = _fields(flat)
            if fields.get("t") == "u":
                records.append(record_from(entry_id, fields))
        contributions = {s: int(a) for s, a in _fields(added_flat).items()}
        snapshot = Snapshot(self.ledger, int(meta["epoch"]), head, tuple(records), contributions)
        return snapshot, last_id, list(clients)

    async def _check_persistence(self) -> None:
        """Refuse a Redis that would forget acknowledged adds, unless the operator said that is fine."""
        try:
            config = await self.redis.config_get("appendonly")
            fsync = await self.redis.config_get("appendfsync")
        except ResponseError:
            log.warning("cannot read %s's persistence settings (CONFIG is disabled): make sure it persists", self.url)
            return
        if config.get("appendonly") != "yes":
            if not self.allow_no_persistence:
                raise LedgerLost(
                    f"{self.url} does not keep an append-only file (appendonly no): an acknowledged add could be "
                    "lost in a Redis restart. Set appendonly yes (and appendfsync always), or start with "
                    "--redis-no-persistence to accept that"
                )
            log.warning("%s keeps no append-only file: acknowledged adds may be lost if it restarts", self.url)
        elif fsync.get("appendfsync") != "always":
            log.warning(
                "%s has appendfsync %s: an add acknowledged in the last second before a crash of its machine "
                "can be lost (appendfsync always makes every ack durable)",
                self.url,
                fsync.get("appendfsync"),
            )

    async def _create_if_missing(self) -> None:
        created = await self.redis.hsetnx(self.key("meta"), "ledger", uuid.uuid4().hex[:16])
        if created:
            await self.redis.hset(self.key("meta"), mapping={"epoch": 1, "seq": 0, "total": 0})
            log.info("created a new ledger in %s (prefix %r)", self.url, self.prefix)

    def _check_sidecar(self, saw: tuple[str, int] | None, ledger: str, seq: int) -> bool:
        """Compare Redis with what servers on this machine saw of it; True if a new epoch must begin."""
        if saw is None:
            return False
        seen_ledger, seen_seq = saw
        if seen_ledger == ledger and seq >= seen_seq:
            return False
        found = f"ledger {ledger} at update {seq}"
        problem = f"{self.url} holds {found}, but this server last saw ledger {seen_ledger} at update {seen_seq}"
        if not self.accept_loss:
            raise LedgerLost(
                f"{problem}: Redis lost data or was replaced. Restore it, or start with --accept-ledger-loss "
                f"to carry on from here (see {self.sidecar})"
            )
        log.warning("%s; carrying on as asked, in a new epoch", problem)
        return True

    def saw(self, seq: int) -> None:
        """Remember the last seq this server published (and, on disk, for the next start of any server here)."""
        self.seen = seq
        now = time.monotonic()
        if now - self._saved_at < SIDECAR_INTERVAL:
            return  # behind by a moment at most: the check at start is only ever weaker for it
        self._saved_at = now
        try:
            self.sidecar.parent.mkdir(parents=True, exist_ok=True)
            # Whole, or not at all: servers on one machine share the file and read it at start.
            temporary = self.sidecar.with_name(f"{self.sidecar.name}.{os.getpid()}")
            temporary.write_text(f"{self.ledger} {seq}\n")
            temporary.replace(self.sidecar)
        except OSError as exc:
            # Only the check at the next start is weaker for it (once a SIDECAR_INTERVAL at most).
            log.warning("could not record update %d in %s (%s)", seq, self.sidecar, exc)

    async def bump_epoch(self) -> int:
        """A new epoch: what this ledger held before is no longer all there (used with --accept-ledger-loss)."""
        return int(await self.redis.hincrby(self.key("meta"), "epoch", 1))

    # -- adding ---------------------------------------------------------------------

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        keys = [self.key(n) for n in ("meta", "log", "points", "added", "seen", "scratch")]
        # Every field followed by a NUL, all in one argument (see lua/apply.lua).
        adds = "".join(
            f"{request.amount}\0{request.name}\0{request.client}\0{request.session or ''}\0{request.op or ''}\0"
            f"{request.undo or ''}\0"
            for request in batch
        )
        if adds.count("\0") != 6 * len(batch):
            # Names are checked (no control characters), ids are printable ASCII: this is a bug upstream.
            raise ValueError("an add holds a NUL character")
        args: list[Any] = [self.ledger, self.seen, repr(at), max(1, math.ceil(self.retention)), STREAM_LENGTH,
                           len(batch), self.prefix, adds]  # fmt: skip
        results = await self._apply(keys=keys, args=args)
        if results and results[0][0] == "lost":
            raise StoreChanged(f"the ledger in {self.url} is no longer {self.ledger} (found {results[0][1]!r})")
        return [self._outcome(request, result, at) for request, result in zip(batch, results, strict=True)]

    @staticmethod
    def _outcome(request: AddRequest, result: list[str], at: float) -> Outcome:
        kind = result[0]
        if kind == "ok":
            seq, total = int(result[1]), int(result[2])
            return Applied(Record(seq, at, request.amount, total, request.name, request.client, request.session,
                                  request.op))  # fmt: skip
        if kind == "dup":
            return Duplicate(int(result[1]))
        if kind == "conflict":
            return Refused(ErrorCode.CONFLICT, f"op {request.op} was already used for {int(result[2]):+,} "
                                               f"(update {result[1]}); use a new op id")  # fmt: skip
        if kind == "zero":
            return Refused(ErrorCode.INVALID_AMOUNT, "0 changes nothing; add a number other than zero")
        if kind == "badundo":
            return Refused(ErrorCode.INVALID_UNDO, f"op {request.undo} is not an add of {-request.amount:+,} "
                                                   "by this session that is still kept")  # fmt: skip
        return Refused(ErrorCode.OVERFLOW, f"adding {request.amount:,} would take the total outside the signed "
                                           "64-bit range")  # fmt: skip

    # -- history and retention -----------------------------------------------------

    async def history(self, times: Sequence[float]) -> list[HistoryPoint]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for moment in times:
                pipe.zrevrangebyscore(self.key("points"), repr(moment), "-inf", start=0, num=1, withscores=True)
            replies = await pipe.execute()
        points: list[HistoryPoint] = []
        for reply in replies:
            if reply:
                member, at = reply[0]
                seq, total = member.split(":")
                if not points or points[-1].seq != int(seq):
                    points.append(HistoryPoint(int(seq), float(at), int(total)))
        return points

    async def prune(self, before: float) -> None:
        """Thin points older than ``before`` to one a minute; forget sessions unseen since.

        Op ids expire by themselves (their keys are set with the retention as expiry).
        """
        points = self.key("points")
        old = cast(
            "list[tuple[str, float]]", await self.redis.zrangebyscore(points, "-inf", f"({before!r}", withscores=True)
        )
        last_of_minute: dict[int, str] = {}
        for member, at in old:
            last_of_minute[int(at // 60)] = member
        keep = set(last_of_minute.values())
        drop = [member for member, _ in old if member not in keep]
        for start in range(0, len(drop), 1000):
            await self.redis.zrem(points, *drop[start : start + 1000])
        seen = await self.redis.hgetall(self.key("seen"))
        gone = [session for session, at in seen.items() if float(at) < before]
        for start in range(0, len(gone), 1000):
            chunk = gone[start : start + 1000]
            await self.redis.hdel(self.key("seen"), *chunk)
            await self.redis.hdel(self.key("added"), *chunk)

    async def close(self) -> None:
        await self.redis.aclose()


def _read_sidecar(path: Path) -> tuple[str, int] | None:
    try:
        ledger, seq = path.read_text().split()
        return ledger, int(seq)
    except (FileNotFoundError, ValueError):
        return None


def _fields(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
