"""One connection's life, as an object: who it is, its budget, and how it is served.

A :class:`DashboardSession` speaks ``tally.v1`` JSON. A :class:`BlogSession`
is the original blog client: it sends bare integers as text and gets back
``Server records total=N``. Both add through the same ledger, so every
dashboard sees every add, whichever path it came in on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

from server.fanout import Fanout
from server.ledger import Ledger
from server.limits import Limits, Pace
from server.presence import Roster
from server.protocol import (
    Ack,
    Add,
    ClientMessage,
    ErrorCode,
    Hello,
    ProtocolError,
    Rename,
    check_name,
    decode_client,
)
from server.state import AddRequest, Applied, Duplicate, Outcome, Refused

__all__ = ["LEGACY_NAME", "BlogSession", "DashboardSession", "Room", "Session"]

log = logging.getLogger("tally.server")

# What bare-number clients are called in presence and updates: they send no name.
LEGACY_NAME = "blog client"
# A rename is broadcast to everyone, so it costs more of the sender's budget than an add.
RENAME_COST = 10
_LEGACY_NUMBER = re.compile(r"[+-]?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Room:
    """What every connection shares: the ledger, who is here, the fan-out and the limits."""

    ledger: Ledger
    roster: Roster
    fanout: Fanout
    limits: Limits


def describe_address(connection: ServerConnection) -> str:
    address = connection.remote_address
    if not address:
        return "unknown"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Session(ABC):
    """One connection: its id, where it comes from, and its message budget."""

    def __init__(self, room: Room, connection: ServerConnection, client_id: str) -> None:
        self.room = room
        self.connection = connection
        self.client_id = client_id
        self.address = describe_address(connection)
        self.pace = Pace(room.limits)

    @abstractmethod
    async def serve(self) -> None:
        """Serve the connection until it closes (raises ConnectionClosed or Flooding)."""

    def check_amount(self, amount: int, op: str | None) -> None:
        limit = self.room.limits.max_amount
        if abs(amount) > limit:
            raise ProtocolError(ErrorCode.INVALID_AMOUNT, f"an add must be between -{limit:,} and {limit:,}", op=op)

    def join(self, name: str) -> None:
        self.room.fanout.publish(self.room.roster.join(self.client_id, name, self.address), soon=False)
        log.info("join   %s %r from %s", self.client_id, name, self.address)


class DashboardSession(Session):
    """A dashboard (``tally.v1``): hello, a welcome, then adds and renames."""

    session_id = ""  # from the hello: op ids are deduplicated per session

    async def serve(self) -> None:
        hello = await self._await_hello()
        if hello is None:
            return  # closed before saying hello
        name, self.session_id = hello
        # Presence may wait a moment for company; the welcome follows at that flush.
        self.join(name)
        self.room.fanout.welcome(self.connection, self.client_id)
        async for frame in self.connection:
            try:
                message = decode_client(frame)
            except ProtocolError as exc:
                # Garbage costs budget like anything else, so a garbage flood is a flood.
                self._refuse(exc if self.pace.allow() else self._rate_limited(None))
                continue
            try:
                if not self.pace.allow(RENAME_COST if isinstance(message, Rename) else 1):
                    raise self._rate_limited(getattr(message, "op", None))
                self._handle(message)
            except ProtocolError as exc:
                self._refuse(exc)

    async def _await_hello(self) -> tuple[str, str] | None:
        """The (name, session) of the first valid hello; every other message is refused."""
        async for frame in self.connection:
            try:
                if not self.pace.allow():
                    raise self._rate_limited(None)
                message = decode_client(frame)
                if not isinstance(message, Hello):
                    raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello first", op=getattr(message, "op", None))
                return check_name(message.name), message.session
            except ProtocolError as exc:
                self._refuse(exc)
        return None

    def _handle(self, message: ClientMessage) -> None:
        room = self.room
        if isinstance(message, Add):
            self.check_amount(message.amount, message.op)
            request = AddRequest(message.amount, room.roster[self.client_id].name, self.client_id, self.session_id,
                                 message.op)  # fmt: skip
            op = message.op
            room.ledger.submit(request).add_done_callback(lambda future: self._answer(op, future))
        elif isinstance(message, Rename):
            room.fanout.publish(room.roster.rename(self.client_id, check_name(message.name)), soon=False)
        else:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "hello was already received on this connection")

    def _answer(self, op: str, future: asyncio.Future[Outcome]) -> None:
        # Runs as the ledger resolves the add, right after it published the
        # update; the fan-out sends the answer after that update, batched with
        # the other answers of the same commit, without a task per add.
        match future.result():
            case Applied(record=record):
                self.room.fanout.send(self.connection, Ack(op=op, seq=record.seq))
            case Duplicate(seq=seq):
                self.room.fanout.send(self.connection, Ack(op=op, seq=seq))
            case Refused(code=code, message=message):
                self._refuse(ProtocolError(code, message, op=op))

    def _rate_limited(self, op: str | None) -> ProtocolError:
        return ProtocolError(ErrorCode.RATE_LIMITED, self.pace.refusal, op=op)

    def _refuse(self, error: ProtocolError) -> None:
        # Through the fan-out's queue for this connection, so answers stay in the order
        # of the messages they answer, acks included.
        log.info("refuse %s %s: %s", self.client_id, error.code, error.message)
        self.room.fanout.send(self.connection, error.to_error())


class BlogSession(Session):
    """The original blog client: a bare number in, ``Server records total=N`` out."""

    async def serve(self) -> None:
        self.join(LEGACY_NAME)
        async for frame in self.connection:
            if self.pace.allow():
                reply = await self._reply(frame)
            else:
                reply = self._refusal(ErrorCode.RATE_LIMITED, self.pace.refusal)
            await self.connection.send(reply)

    async def _reply(self, frame: str | bytes) -> str:
        text = frame.strip() if isinstance(frame, str) else None
        if text is None or not _LEGACY_NUMBER.fullmatch(text):
            return self._refusal(ErrorCode.INVALID_AMOUNT, "send a whole number such as 5 or -3")
        amount = int(text)
        try:
            self.check_amount(amount, None)
        except ProtocolError as exc:
            return self._refusal(exc.code, exc.message)
        match await self.room.ledger.submit(AddRequest(amount, LEGACY_NAME, self.client_id)):
            case Applied(record=record):
                return f"Server records total={record.total}"
            case Refused(code=code, message=message):
                return self._refusal(code, message)
            case Duplicate():  # bare-number adds carry no op id, so nothing can repeat them
                return f"Server records total={self.room.ledger.total}"

    def _refusal(self, code: str, message: str) -> str:
        log.info("refuse %s %s: %s", self.client_id, code, message)
        return f"error: {code}: {message}"
