"""The shared store: one ledger in Redis, served by any number of tally-server processes.

Every batch of adds is one Lua script (``lua/apply.lua``) that runs the rule of
:func:`tally.server.state.apply_batch` atomically, so every server sees one order
and one seq. Applied updates go into a capped stream (``<prefix>log``) whose
entry ids are the seqs; every server follows that stream and publishes what
it reads, its own adds included (see :mod:`tally.server.cluster`). Op ids are
remembered for the retention window with an expiry; each session's
contribution and one point a second of the total are kept beside them.

Keys, under a prefix (default ``tally:``) so several tallies can share a Redis:
``meta`` (hash: ledger, epoch, seq, total, digest, key), ``log`` (stream),
``op:<session>:<op>``, ``added`` and ``seen`` (hashes by session), ``points``
(sorted set by time), ``servers`` and ``clients:<server>`` (presence), and while
a rewind is repaired ``rewound``, ``claims``, ``lead``, ``repair``, ``repaired``
(see :mod:`tally.server.store.redis_repair` and :mod:`tally.server.repair`).

A server never creates a ledger by itself: ``tally-server init`` does
(:meth:`RedisStore.create`). ``redis+sentinel://host:port,host:port/service``
follows a Sentinel-managed master through failovers; with ``replicas`` an add is
acknowledged only once that many replicas have it (``WAIT``).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import uuid
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ResponseError

from tally.server.protocol import ClientInfo, ErrorCode, HistoryPoint
from tally.server.protocol.messages import PresenceEvent
from tally.server.state import (
    AddRequest,
    Applied,
    Duplicate,
    Head,
    Outcome,
    Record,
    Refused,
    Snapshot,
    thin_to_minutes,
)
from tally.server.store.address import shown
from tally.server.store.base import (
    Beat,
    LedgerLost,
    Loaded,
    NoLedger,
    PresenceEntry,
    StoreError,
    StoreRewound,
)
from tally.server.store.redis_repair import RedisRepair, parse_mark, parse_restore, reachable
from tally.server.store.scripts import lua_script

__all__ = ["STREAM_LENGTH", "RedisStore", "client_from", "client_json", "connect", "record_from"]

log = logging.getLogger("tally.server")

# Stream entries kept: enough for every server to follow, and for dashboards to resume.
STREAM_LENGTH = 100_000
# A command that takes longer than this is a Redis that froze: the add is refused, not stuck.
SOCKET_TIMEOUT = 10.0


def connect(url: str) -> redis.Redis:
    """A client for ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://h:p,h:p/service[/db]``."""
    options: dict[str, Any] = {"decode_responses": True, "health_check_interval": 5, "socket_timeout": SOCKET_TIMEOUT}
    if not url.startswith("redis+sentinel://"):
        return redis.from_url(url, **options)
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    path = [part for part in parts.path.split("/") if part]
    if not hosts or not path or len(path) > 2:
        raise ValueError(f"{url!r}: write redis+sentinel://host:port,host:port/service (or …/service/db)")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        sentinels.append((name.strip("[]") or "127.0.0.1", int(port or 26379)))
    if auth:
        user, _, password = auth.partition(":")
        options |= {"username": unquote(user) or None, "password": unquote(password) or None}
    sentinel = Sentinel(sentinels, socket_timeout=SOCKET_TIMEOUT)
    return cast("redis.Redis", sentinel.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0, **options))


def client_json(info: ClientInfo) -> str:
    return json.dumps(
        {"id": info.id, "name": info.name, "since": info.since, "added": info.added, "address": info.address,
         "tag": info.tag}, separators=(",", ":"),
    )  # fmt: skip


def client_from(text: str) -> ClientInfo:
    data: dict[str, Any] = json.loads(text)
    return ClientInfo(data["id"], data["name"], data["since"], data["added"], data.get("address"), data.get("tag", ""))


def record_from(entry_id: str, fields: dict[str, str]) -> Record:
    """The record an update entry of the stream stands for.

    An update entry holds its record in one field, ``r``: at, amount, total, name, client,
    session, op, undoes, the session's contribution and the fingerprint, each followed by
    a NUL but the last (one field, not ten: every server parses every entry). Older entries
    have no fingerprint, and the oldest kept each as a field of its own: both are read too.
    """
    packed = fields.get("r")
    digest = ""
    if packed is None:
        at, amount, total, name, client = (fields[k] for k in ("at", "amount", "total", "name", "client"))
        session, op, undoes = fields["session"], fields["op"], fields["undoes"]
    else:
        at, amount, total, name, client, session, op, undoes, _, *rest = packed.split("\0")
        digest = rest[0] if rest else ""
    return Record(
        seq=int(entry_id.split("-", 1)[0]), at=float(at), amount=int(amount), total=int(total), name=name,
        client=client, session=session or None, op=op or None, undoes=int(undoes) if undoes else None, digest=digest,
    )  # fmt: skip


class RedisStore(RedisRepair):
    """A ledger in Redis; ``url`` is ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tally:",
        allow_no_persistence: bool = False,
        retention: float = 86_400.0,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        """``replicas``: acknowledge an add only once that many replicas have it (``replica_timeout`` each)."""
        self.retention = retention
        self.allow_no_persistence = allow_no_persistence
        self.replicas = replicas
        self.replica_timeout = replica_timeout
        super().__init__(shown(url), connect(url), prefix)
        self.ledger = ""
        self._saw = Head()
        self._saw_epoch = 0
        self._apply = self.redis.register_script(lua_script("apply.lua"))
        self._load = self.redis.register_script(lua_script("load.lua"))
        self._create = self.redis.register_script(lua_script("create.lua"))
        self._presence = self.redis.register_script(lua_script("presence.lua"))
        self._heartbeat = self.redis.register_script(lua_script("heartbeat.lua"))
        self._checked = False

    # -- creating and opening ----------------------------------------------------------

    @reachable
    async def create(self) -> str:
        """Create a new, empty ledger (``tally-server init``); raises :class:`LedgerLost` if one is there."""
        await self._check_persistence()
        ledger = uuid.uuid4().hex[:16]
        if not await self._create(keys=[self.key("meta")], args=[ledger, secrets.token_hex(16)]):
            found = cast("str", await self.redis.hget(self.key("meta"), "ledger"))
            raise LedgerLost(f"{self.url} (prefix {self.prefix!r}) already holds ledger {found}: nothing was changed")
        return ledger

    async def open(self, *, recent: int) -> Snapshot:
        return (await self.load(recent=recent)).snapshot

    @reachable
    async def load(self, *, recent: int) -> Loaded:
        if not self._checked:
            await self._check_persistence()
            self._checked = True
        keys = [self.key(n) for n in ("meta", "log", "servers", "added", "rewound", "repair")]
        meta_flat, last_id, entries, clients, added_flat, mark, repair_flat = await self._load(
            keys=keys, args=[self.prefix, recent]
        )
        meta = _fields(meta_flat)
        if "ledger" not in meta:
            raise NoLedger(
                f"there is no ledger in {self.url} (prefix {self.prefix!r}): create one with "
                f"`tally-server init --db {self.url}`"
                + ("" if self.prefix == "tally:" else f" --redis-prefix {self.prefix}")
            )
        self.ledger = meta["ledger"]
        head = Head(int(meta["total"]), int(meta["seq"]), meta.get("digest") or self.ledger)
        updates = ((entry_id, _fields(flat)) for entry_id, flat in reversed(entries))
        records = [record_from(entry_id, fields) for entry_id, fields in updates if fields.get("t") == "u"]
        snapshot = Snapshot(
            self.ledger, int(meta["epoch"]), head, tuple(records), _contributions(added_flat),
            meta.get("key", ""),
        )  # fmt: skip
        return Loaded(
            snapshot, last_id, tuple(client_from(text) for text in clients), parse_mark(mark),
            parse_restore(_fields(repair_flat)),
        )  # fmt: skip

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

    def saw(self, ledger: str, epoch: int, head: Head) -> None:
        self._saw, self._saw_epoch = head, epoch

    # -- adding -------------------------------------------------------------------------

    @reachable
    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await self._run_apply(batch, at, repair=False)

    @reachable
    async def reapply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        return await self._run_apply(batch, at, repair=True)

    async def _run_apply(self, batch: Sequence[AddRequest], at: float, *, repair: bool) -> list[Outcome]:
        keys = [self.key(n) for n in ("meta", "log", "points", "added", "seen", "scratch", "rewound")]
        # Every field followed by a NUL, all in one argument (see lua/apply.lua).
        adds = "".join(
            f"{request.amount}\0{request.name}\0{request.client}\0{request.session or ''}\0{request.op or ''}\0"
            f"{request.undo or ''}\0"
            for request in batch
        )
        if adds.count("\0") != 6 * len(batch):
            # Names are checked (no control characters), ids are printable ASCII: this is a bug upstream.
            raise ValueError("an add holds a NUL character")
        saw = Head() if repair else self._saw
        mode = "repair" if repair else "touch" if self.replicas else ""
        args: list[Any] = [self.ledger, saw.seq, saw.digest, repr(at), max(1, math.ceil(self.retention)),
                           STREAM_LENGTH, len(batch), self.prefix, adds, mode]  # fmt: skip
        if self.replicas:
            results = await self._apply_replicated(keys, args)
        else:
            results = await self._apply(keys=keys, args=args)
        if results and results[0][0] == "rewound":
            mark = parse_mark(results[0][1])
            raise StoreRewound(mark.reason if mark is not None else "the ledger is marked rewound")
        if results and results[0][0] == "lost":
            raise StoreRewound(f"the store holds {results[0][1] or 'no ledger'}, not what this server saw")
        return [_outcome(request, result, at) for request, result in zip(batch, results, strict=True)]

    async def _apply_replicated(self, keys: list[str], args: list[Any]) -> Any:
        # WAIT counts the writes of its own connection: the script and the WAIT share one (a pipeline).
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._apply(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self.replicas, max(1, int(self.replica_timeout * 1000)))
            results, acknowledged = await pipe.execute()
        if int(acknowledged) < self.replicas:
            raise StoreError(
                f"only {acknowledged} of {self.replicas} replicas had the write within {self.replica_timeout:g} s"
            )
        return results

    # -- following and presence -----------------------------------------------------------

    @reachable
    async def read(self, position: str, *, block: float) -> tuple[str, list[Record | PresenceEntry]]:
        replies = await self.redis.xread({self.key("log"): position}, count=1000, block=max(1, int(block * 1000)))
        entries: list[Record | PresenceEntry] = []
        for _, stream in cast("list[tuple[str, list[tuple[str, dict[str, str]]]]]", replies or []):
            for entry_id, fields in stream:
                position = entry_id
                if fields.get("t") == "u":
                    entries.append(record_from(entry_id, fields))
                else:
                    event = cast("PresenceEvent", fields["event"])
                    entries.append(PresenceEntry(event, client_from(fields["client"])))
        return position, entries

    @reachable
    async def announce(self, server: str, event: PresenceEvent, client: ClientInfo) -> None:
        keys = [self.key("meta"), self.key("log"), self.key(f"clients:{server}")]
        await self._presence(keys=keys, args=[event, client.id, client_json(client), server, STREAM_LENGTH])

    @reachable
    async def beat(self, server: str, ttl: float) -> Beat:
        keys = [self.key(n) for n in ("servers", "meta", "log", "rewound", "repair")]
        args: list[str | int] = [server, max(1, int(ttl * 1000)), self.prefix, STREAM_LENGTH, self.ledger,
                                 self._saw_epoch, self._saw.seq, self._saw.digest]  # fmt: skip
        alive, epoch, mark, round_, *reaped = await self._heartbeat(keys=keys, args=args)
        return Beat(bool(alive), tuple(reaped), int(epoch), parse_mark(mark), round_)

    @reachable
    async def announce_all(self, server: str, clients: Sequence[ClientInfo]) -> None:
        """This server's clients are exactly ``clients``: its list in the store is rewritten, each one announced."""
        keys = [self.key("meta"), self.key("log"), self.key(f"clients:{server}")]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys[2])
            for client in clients:
                await self._presence(keys=keys, args=["joined", client.id, client_json(client), server, STREAM_LENGTH],
                                     client=pipe)  # fmt: skip
            await pipe.execute()

    @reachable
    async def retire(self, server: str) -> None:
        await self.redis.zrem(self.key("servers"), server)

    @reachable
    async def digest_at(self, seq: int) -> str | None:
        entry = cast(
            "list[tuple[str, dict[str, str]]]", await self.redis.xrange(self.key("log"), f"{seq}-0", f"{seq}-0")
        )
        if not entry:
            meta = cast("list[str | None]", await self.redis.hmget(self.key("meta"), "seq", "digest"))
            return meta[1] if meta[0] is not None and int(meta[0]) == seq else None
        return record_from(entry[0][0], entry[0][1]).digest or None

    # -- history and retention ---------------------------------------------------------------

    @reachable
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

    @reachable
    async def prune(self, before: float) -> None:
        """Thin points older than ``before`` to one a minute; forget sessions unseen since.

        Op ids expire by themselves (their keys are set with the retention as expiry).
        """
        points = self.key("points")
        old = cast(
            "list[tuple[str, float]]", await self.redis.zrangebyscore(points, "-inf", f"({before!r}", withscores=True)
        )
        keep = thin_to_minutes((int(member.split(":")[0]), at) for member, at in old)
        drop = [member for member, _ in old if int(member.split(":")[0]) not in keep]
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


def _outcome(request: AddRequest, result: list[str], at: float) -> Outcome:
    kind = result[0]
    if kind == "ok":
        seq, total, digest, undoes = int(result[1]), int(result[2]), result[3], result[4]
        return Applied(Record(seq, at, request.amount, total, request.name, request.client, request.session,
                              request.op, int(undoes) if undoes else None, digest))  # fmt: skip
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
    if kind == "undone":
        return Refused(ErrorCode.INVALID_UNDO, f"op {request.undo} was already undone (update {result[1]})")
    return Refused(ErrorCode.OVERFLOW, f"adding {request.amount:,} would take the total outside the signed "
                                       "64-bit range")  # fmt: skip


def _fields(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _contributions(flat: Sequence[str]) -> dict[str, int]:
    return {session: int(added) for session, added in _fields(flat).items()}
