"""One connection's life, as an object: who it is, what it has in flight, and how it is served.

A :class:`DashboardSession` speaks ``tally.v2`` (or ``tally.v1``) JSON. A
:class:`BlogSession` is the original blog client: it sends bare integers as
text and gets back ``Server records total=N``. Both add through the same
ledger, so every dashboard sees every add, whichever path it came in on.

Pacing happens below, in :mod:`server.connection`: a session reads its next
frame only when the connection may send one. A session also stops reading
while ``max_in_flight`` of its adds wait for the store, which keeps one
connection from filling the ledger's queue ahead of everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from tally.server.connection import TallyConnection
from tally.server.fanout import Fanout
from tally.server.history import HistoryReader
from tally.server.ledger import Ledger
from tally.server.limits import Limits
from tally.server.monitoring import Metrics
from tally.server.presence import Announcer, Roster
from tally.server.protocol import (
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    ClientsPage,
    ClientsRequest,
    ErrorCode,
    Hello,
    HistoryPage,
    HistoryRequest,
    ProtocolError,
    Rename,
    Resume,
    ServerInfo,
    check_name,
    decode_client,
    session_id,
)
from tally.server.protocol.plain_add import plain_add
from tally.server.publish import Publisher, session_tag
from tally.server.state import AddRequest, Applied, Duplicate, Outcome, Refused

__all__ = ["LEGACY_NAME", "BlogSession", "DashboardSession", "Room", "Session"]

log = logging.getLogger("tally.server")

# What bare-number clients are called in presence and updates: they send no name.
LEGACY_NAME = "blog client"
# What a message costs of the connection's budget, beyond the frame itself: these are
# broadcast to everyone, or make the server work.
EXTRA_COST = {Rename: 9, ClientsRequest: 4, HistoryRequest: 9}
_LEGACY_NUMBER = re.compile(r"[+-]?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Room:
    """What every connection shares: the ledger, who is here, the way out, the limits, the server's identity.

    ``check_resume`` holds a resuming dashboard's sealed claim of where it left off against the
    store before the welcome (and so before any of its adds): a store that lost that history is
    reported (see ``tally.server.claims``).
    """

    ledger: Ledger
    roster: Roster
    presence: Announcer
    publisher: Publisher
    fanout: Fanout
    history: HistoryReader
    limits: Limits
    server: ServerInfo
    metrics: Metrics
    check_resume: Callable[[Resume], Awaitable[None]]
    show_addresses: bool = False


def describe_address(connection: ServerConnection) -> str:
    address = connection.remote_address
    if not address:
        return "local"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Session(ABC):
    """One connection: its id, where it comes from, and its adds in flight."""

    def __init__(self, room: Room, connection: ServerConnection, client_id: str) -> None:
        self.room = room
        self.connection = connection
        self.client_id = client_id
        self.address = describe_address(connection)
        self.in_flight = 0  # adds submitted and not yet answered
        self._answered: asyncio.Future[None] | None = None  # a wait for the next answer, while one waits
        self.joined = False

    @abstractmethod
    async def serve(self) -> None:
        """Serve the connection until it closes (raises ConnectionClosed)."""

    def note(self, event: str, message: str, *args: object, code: str | None = None) -> None:
        """One line of the log about this connection; JSON logs get its event, client, address and code."""
        extra = {"event": event, "client": self.client_id, "address": self.address, "code": code}
        log.info(message, *args, extra=extra)

    def charge(self, cost: float) -> None:
        if cost and isinstance(self.connection, TallyConnection):
            self.connection.charge(cost)

    async def spend(self, cost: float = 1.0) -> None:
        """Pay for the next message, waiting while this connection is ahead of its budget."""
        if isinstance(self.connection, TallyConnection):
            await self.connection.spend(cost)

    def check_amount(self, amount: int, op: str | None) -> None:
        limit = self.room.limits.max_amount
        if abs(amount) > limit:
            raise ProtocolError(ErrorCode.INVALID_AMOUNT, f"an add must be between -{limit:,} and {limit:,}", op=op)

    def submit(self, request: AddRequest) -> None:
        """Hand an add to the ledger; :meth:`answer` is called with its outcome."""
        self.in_flight += 1
        self.room.ledger.submit(request, self._reply)

    @abstractmethod
    def answer(self, request: AddRequest, outcome: Outcome) -> None:
        """Tell the client what became of its add (called once the update, if any, was published)."""

    def _reply(self, request: AddRequest, outcome: Outcome) -> None:
        self.in_flight -= 1
        waiting = self._answered
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
        self.answer(request, outcome)

    async def _next_answer(self) -> None:
        if self._answered is None or self._answered.done():
            self._answered = asyncio.get_running_loop().create_future()
        await self._answered

    async def pace_in_flight(self) -> None:
        """Wait while too many of this connection's adds are still with the store."""
        while self.in_flight >= self.room.limits.max_in_flight:
            await self._next_answer()

    async def settle(self) -> None:
        """Wait for every add in flight, so that nothing this client did is announced after it left."""
        while self.in_flight:
            await self._next_answer()

    async def join(self, name: str, session: str | None, since: float | None = None) -> None:
        """Announce this client; ``since``, when it says it first came, is kept within the retention window."""
        room = self.room
        now = time.time()
        info = ClientInfo(
            id=self.client_id,
            name=name,
            since=now if since is None else min(now, max(since, now - room.limits.retention)),
            added=room.ledger.view.contribution(session),
            address=self.address if room.show_addresses else None,
            tag=session_tag(session),
        )
        self.joined = True
        await room.presence.join(info)
        self.note("join", "join   %s %r from %s", self.client_id, name, self.address)

    async def leave(self) -> None:
        if not self.joined:
            return
        left = await self.room.presence.leave(self.client_id)
        if left is not None:
            self.note("leave", "leave  %s %r from %s", self.client_id, left.name, self.address)

    async def close_for(self, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close(CloseCode.POLICY_VIOLATION, reason)


class DashboardSession(Session):
    """A dashboard (or a script) speaking ``tally.v2`` or ``tally.v1``: hello, a welcome, then adds and requests."""

    def __init__(self, room: Room, connection: ServerConnection, client_id: str, version: int) -> None:
        super().__init__(room, connection, client_id)
        self.version = version
        self.session: str | None = None  # from the hello: op ids are deduplicated per session
        self.name = ""
        self.watcher = False

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(self.room.limits.hello_timeout):
                hello = await self._await_hello()
        except TimeoutError:
            self.note("close", "close  %s from %s: no hello", self.client_id, self.address, code="no_hello")
            await self.close_for(f"no hello within {self.room.limits.hello_timeout:g} s")
            return
        if hello is None:
            return  # closed before saying hello
        self.name = check_name(hello.name)
        self.session = session_id(hello.session or "", 1) if self.version == 1 else session_id(hello.secret or "")
        self.watcher = hello.role == "watcher"
        if self.watcher:
            self.room.roster.watchers += 1
        else:
            # Presence may wait a moment for company; the welcome follows at that flush.
            await self.join(self.name, self.session, hello.since)
        room = self.room
        if hello.resume is not None:
            await room.check_resume(hello.resume)
        room.fanout.welcome(
            self.connection, lambda: room.publisher.personal(hello, self.client_id, self.session), self.version
        )
        self._received = self.room.metrics.received_for(f"tally.v{self.version}")
        await self._serve_messages()

    async def _serve_messages(self) -> None:
        """Every message after the hello, in order; the connection hands plain text frames that arrive
        while this waits for the next one to :meth:`_take` (see tally.server.connection)."""
        connection = self.connection
        if isinstance(connection, TallyConnection):
            connection.sink = self._take
        try:
            async for frame in connection:
                await self.spend()
                self._received.inc()
                await self.pace_in_flight()  # before serving: the adds _take served count too
                try:
                    message = decode_client(frame, self.version)
                    self.charge(EXTRA_COST.get(type(message), 0))
                    await self._handle(message)
                except ProtocolError as exc:
                    self._refuse(exc)
        finally:
            if isinstance(connection, TallyConnection):
                connection.sink = None

    def _take(self, text: str) -> bool:
        """A plain text frame that arrived while this session waited for its next message: served now, as
        :meth:`_serve_messages` would serve it, if it is an add that may go at once; else False, and the
        frame takes the usual way (it pays, waits while the connection is in debt, and so on)."""
        if self.in_flight >= self.room.limits.max_in_flight:
            return False
        message = plain_add(text, self.version)
        if message is None or not isinstance(self.connection, TallyConnection) or not self.connection.pay(1.0):
            return False
        self._received.inc()
        try:
            self._add(message)
        except ProtocolError as exc:
            self._refuse(exc)
        return True

    async def leave(self) -> None:
        if self.watcher:
            self.room.roster.watchers -= 1
        await super().leave()

    async def _await_hello(self) -> Hello | None:
        """The first valid hello; every other message is refused."""
        async for frame in self.connection:
            await self.spend()
            self.room.metrics.received_for(f"tally.v{self.version}").inc()
            try:
                message = decode_client(frame, self.version)
                if not isinstance(message, Hello):
                    raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello first", op=getattr(message, "op", None))
                check_name(message.name)
                return message
            except ProtocolError as exc:
                self._refuse(exc)
        return None

    async def _handle(self, message: ClientMessage) -> None:
        room = self.room
        if isinstance(message, Add):
            self._add(message)
        elif isinstance(message, Rename):
            self.name = check_name(message.name)
            if not self.watcher:
                await room.presence.rename(self.client_id, self.name)
        elif isinstance(message, ClientsRequest):
            room.fanout.send(self.connection, lambda: self._page(message))
        elif isinstance(message, HistoryRequest):
            await self._history(message)
        else:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "hello was already received on this connection")

    def _add(self, message: Add) -> None:
        self.check_amount(message.amount, message.op)
        self.submit(AddRequest(message.amount, self.name, self.client_id, self.session, message.op, message.undo))

    def _page(self, request: ClientsRequest) -> ClientsPage:
        total, clients = self.room.roster.page(
            offset=request.offset,
            limit=request.limit,
            sort=request.sort,
            descending=request.descending,
            filter=request.filter,
        )
        return ClientsPage(id=request.id, offset=request.offset, total=total, clients=clients)

    async def _history(self, request: HistoryRequest) -> None:
        try:
            points = await self.room.history.answer(request.since, request.points)
        except Exception as exc:
            log.error("history unavailable (%s)", exc)
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "the store is unavailable; try again", request=request.id
            ) from None
        self.room.fanout.send(self.connection, HistoryPage(id=request.id, points=tuple(points)))

    def answer(self, request: AddRequest, outcome: Outcome) -> None:
        # Called by the ledger right after it published the update: the fan-out sends
        # the answer after that update, batched with the other answers of the same commit.
        op = request.op or ""  # a dashboard's adds always carry one
        match outcome:
            case Applied(record=record):
                self.room.fanout.send(self.connection, Ack(op=op, seq=record.seq))
            case Duplicate(seq=seq):
                self.room.fanout.send(self.connection, Ack(op=op, seq=seq))
            case Refused(code=code, message=message):
                self._refuse(ProtocolError(code, message, op=op))

    def _refuse(self, error: ProtocolError) -> None:
        # Through the fan-out's queue for this connection, so answers stay in the order
        # of the messages they answer, acks included.
        self.note("refuse", "refuse %s %s: %s", self.client_id, error.code, error.message, code=error.code)
        self.room.metrics.refused(error.code, add=error.op is not None)
        self.room.fanout.send(self.connection, error.to_error())


class BlogSession(Session):
    """The original blog client: a bare number in, ``Server records total=N`` out.

    It is announced to everyone only once it has added something, so that a
    connection that comes and goes costs the others nothing.
    """

    _outcome: asyncio.Future[Outcome] | None = None  # the answer to the add in flight

    async def serve(self) -> None:
        frames = aiter(self.connection)
        try:
            async with asyncio.timeout(self.room.limits.hello_timeout):
                first = await anext(frames)
        except (TimeoutError, StopAsyncIteration):
            return
        received = self.room.metrics.received_for("bare")
        received.inc()  # before the reply: a client that sends and closes at once was still heard
        await self.connection.send(await self._respond(first))
        async for frame in frames:
            await self.spend()
            received.inc()
            await self.connection.send(await self._respond(frame))

    def answer(self, request: AddRequest, outcome: Outcome) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)

    async def _respond(self, frame: str | bytes) -> str:
        text = frame.strip() if isinstance(frame, str) else None
        if text is None or not _LEGACY_NUMBER.fullmatch(text):
            return self._refusal(ErrorCode.INVALID_AMOUNT, "send a whole number such as 5 or -3")
        amount = int(text)
        try:
            self.check_amount(amount, None)
        except ProtocolError as exc:
            return self._refusal(exc.code, exc.message)
        if amount and not self.joined:
            await self.join(LEGACY_NAME, None)
        # One add at a time: the answer is awaited before the next frame is read.
        self._outcome = asyncio.get_running_loop().create_future()
        self.submit(AddRequest(amount, LEGACY_NAME, self.client_id))
        match await self._outcome:
            case Applied(record=record):
                return f"Server records total={record.total}"
            case Refused(code=code, message=message):
                return self._refusal(code, message)
            case Duplicate():  # bare-number adds carry no op id, so nothing can repeat them
                return f"Server records total={self.room.ledger.view.total}"

    def _refusal(self, code: str, message: str) -> str:
        self.note("refuse", "refuse %s %s: %s", self.client_id, code, message, code=code)
        self.room.metrics.refused(code, add=True)  # the blog client sends nothing but adds
        return f"error: {code}: {message}"
