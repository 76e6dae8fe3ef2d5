"""Many servers, one total: following the shared ledger in Redis, and presence across servers.

Every server follows the same stream (``<prefix>log``) and does the same with
what it reads, in the same order: an update is published to its dashboards,
and acknowledges the adder if the adder is here; a presence event changes the
roster and is published too. So dashboards on every server see one order,
with one seq, and one list of who is online.

Presence: each server keeps its own clients in ``clients:<server>`` and beats
every ``HEARTBEAT`` seconds; a server whose beat lapses (``SERVER_TTL``) is
reaped by the next server to beat, which announces its clients as left. So a
server killed with SIGKILL leaves everyone's lists within SERVER_TTL +
HEARTBEAT. A server that was reaped while cut off from Redis announces its
clients again when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, cast

from redis.exceptions import RedisError

from tally.server.fanout import Fanout
from tally.server.ledger import RECENT_KEPT, Ledger
from tally.server.presence import Announcer, Roster
from tally.server.protocol import ClientInfo
from tally.server.state import Record
from tally.server.store.redis import STREAM_LENGTH, RedisStore, StoreChanged, lua_script, record_from
from tally.server.tasks import stop_if_cancelled

__all__ = ["HEARTBEAT", "SERVER_TTL", "Cluster"]

log = logging.getLogger("tally.server")

HEARTBEAT = 1.0
SERVER_TTL = 5.0
# How long one blocking read waits for the stream (redis-py's socket timeout must be longer).
READ_BLOCK_MS = 1000
RETRY = 0.5


def _info_json(info: ClientInfo) -> str:
    return json.dumps(
        {"id": info.id, "name": info.name, "since": info.since, "added": info.added, "address": info.address,
         "tag": info.tag}, separators=(",", ":"),
    )  # fmt: skip


def _info(text: str) -> ClientInfo:
    data: dict[str, Any] = json.loads(text)
    return ClientInfo(data["id"], data["name"], data["since"], data["added"], data.get("address"), data.get("tag", ""))


class Cluster(Announcer):
    """This server's part in a cluster sharing one Redis."""

    def __init__(
        self,
        store: RedisStore,
        ledger: Ledger,
        roster: Roster,
        fanout: Fanout,
        server_id: str,
        *,
        ttl: float = SERVER_TTL,
    ) -> None:
        """``ttl``: how long this server counts as alive after each beat (others reap it after)."""
        super().__init__(roster, fanout)
        self.ttl = ttl
        self.store = store
        self.ledger = ledger
        self.server_id = server_id
        self.redis = store.redis
        self._presence = store.redis.register_script(lua_script("presence.lua"))
        self._heartbeat = store.redis.register_script(lua_script("heartbeat.lua"))
        self.mine: dict[str, ClientInfo] = {}  # this server's clients, as announced
        self.position = "0-0"  # the last stream entry taken
        self._tasks: list[asyncio.Task[None]] = []
        self.lost = ""  # why the shared ledger cannot be served, while it cannot
        self._stopping = False

    async def start(self) -> None:
        await self._load()
        await self._beat()
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._beat_forever())]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # redis-py may swallow a cancellation in the middle of a blocking read; the loops also look
        # at _stopping after each read, which returns within READ_BLOCK_MS.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=READ_BLOCK_MS / 1000 + 1)
        with contextlib.suppress(RedisError):
            # Leave at once rather than after SERVER_TTL: our clients are gone with us.
            for client_id in list(self.mine):
                await self.leave(client_id)
            await self.redis.zrem(self.store.key("servers"), self.server_id)

    async def _load(self) -> None:
        """Take the ledger and everyone online from Redis, and follow from there."""
        snapshot, position, clients = await self.store.load(recent=RECENT_KEPT)
        self.ledger.reload(snapshot)
        self.store.saw(snapshot.head.seq)
        self.position = position
        self.roster.reset(_info(text) for text in clients)

    # -- announcing ------------------------------------------------------------------

    async def _announce(self, event: str, info: ClientInfo) -> None:
        keys = [self.store.key("meta"), self.store.key("log"), self.store.key(f"clients:{self.server_id}")]
        await self._presence(keys=keys, args=[event, info.id, _info_json(info), self.server_id, STREAM_LENGTH])

    async def join(self, info: ClientInfo) -> None:
        self.mine[info.id] = info
        try:
            await self._announce("joined", info)
        except RedisError as exc:
            log.error("could not announce a join (%s); it will be when Redis is back", exc)

    async def leave(self, client_id: str) -> ClientInfo | None:
        info = self.mine.pop(client_id, None)
        if info is not None:
            try:
                await self._announce("left", info)
            except RedisError as exc:
                log.error("could not announce a leave (%s); others will see it when this server is reaped", exc)
        return info

    async def rename(self, client_id: str, name: str) -> None:
        old = self.mine.get(client_id)
        if old is None:
            return
        info = self.mine[client_id] = ClientInfo(old.id, name, old.since, old.added, old.address, old.tag)
        with contextlib.suppress(RedisError):
            await self._announce("renamed", info)

    # -- following -------------------------------------------------------------------

    async def _follow(self) -> None:
        log_key = self.store.key("log")
        while not self._stopping:
            try:
                if self.lost:
                    await self._load()
                    log.warning("the shared ledger is back (total=%d, seq=%d)", self.ledger.total, self.ledger.seq)
                    self.lost = ""
                replies = await self.redis.xread({log_key: self.position}, count=1000, block=READ_BLOCK_MS)
            except Exception as exc:
                stop_if_cancelled(exc)
                if not isinstance(exc, RedisError | StoreChanged | OSError):
                    log.exception("could not load the shared ledger")  # a bug, or data we cannot read
                self._lose(str(exc))
                await asyncio.sleep(RETRY)
                continue
            try:
                for _, entries in cast("list[tuple[str, list[tuple[str, dict[str, str]]]]]", replies or []):
                    self._take(entries)
            except Exception as exc:
                # Never end this loop silently: without it this server would go on taking adds
                # and never publish them. Start again from a snapshot.
                log.exception("could not publish what the shared ledger holds; reloading")
                self._lose(f"could not publish updates ({exc})")
                await asyncio.sleep(RETRY)

    def _lose(self, why: str) -> None:
        if not self.lost:
            log.error("lost the shared ledger (%s); refusing adds until it is back", why)
        self.lost = why or "Redis is unreachable"
        self.ledger.lost(self.lost)

    def _take(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        records: list[Record] = []
        for entry_id, fields in entries:
            self.position = entry_id
            if fields.get("t") == "u":
                record = record_from(entry_id, fields)
                if record.seq <= self.ledger.seq:
                    continue
                if record.seq != self.ledger.seq + 1 and not records:
                    # A gap (the stream was trimmed past us, or Redis lost entries): start again from
                    # a snapshot; dashboards notice the jump in seq and resynchronise too.
                    log.warning("missed updates %d..%d; reloading", self.ledger.seq + 1, record.seq - 1)
                    self._lose("missed updates")
                    return
                records.append(record)
                continue
            if records:  # updates before this event go out before it
                self.ledger.published(records)
                records = []
            self._take_presence(fields)
        if records:
            self.ledger.published(records)

    def _take_presence(self, fields: dict[str, str]) -> None:
        info = _info(fields["client"])
        event = fields["event"]
        if event == "left":
            presence = self.roster.leave(info.id)
        elif event == "renamed" and info.id in self.roster:
            presence = self.roster.rename(info.id, info.name)
        else:
            presence = self.roster.join(info)
        if presence is not None:
            self.fanout.publish(presence, soon=False)

    # -- staying alive ---------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(min(HEARTBEAT, self.ttl / 3))
            try:
                await self._beat()
            except RedisError as exc:
                stop_if_cancelled(exc)
                self._lose(str(exc))

    async def _beat(self) -> None:
        keys = [self.store.key("servers"), self.store.key("meta"), self.store.key("log")]
        args: list[str | int] = [self.server_id, int(self.ttl * 1000), self.store.prefix, STREAM_LENGTH]
        alive, *reaped = await self._heartbeat(keys=keys, args=args)
        for server in reaped:
            log.info("server %s stopped beating: its clients left", server)
        if not alive and self.mine:
            # We were reaped while cut off (or Redis lost our entry): announce our clients again.
            log.warning("this server was taken for dead; announcing its %d clients again", len(self.mine))
            for info in list(self.mine.values()):
                await self._announce("joined", info)
