"""One connection's life: handshake, message loop, errors, cleanup.

Dashboards speak ``tally.v1`` JSON. A connection that did not ask for it is
the original blog client: it sends bare integers as text and gets back
``Server records total=N``. Both paths share the ledger, so every dashboard
sees every add, whichever path it came in on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from functools import partial

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from server.fanout import Fanout
from server.ledger import Ledger
from server.limits import Limits, TokenBucket
from server.presence import Roster
from server.protocol import (
    SUBPROTOCOL,
    Ack,
    Add,
    ClientMessage,
    Error,
    ErrorCode,
    Hello,
    ProtocolError,
    Rename,
    check_name,
    decode_client,
)
from server.state import AddRequest, Applied, Duplicate, Outcome, Refused

__all__ = ["LEGACY_NAME", "TALLY_PATH", "Handler", "speaks_tally"]

log = logging.getLogger("tally.server")

# What bare-number clients are called in presence and updates: they send no name.
LEGACY_NAME = "blog client"
TALLY_PATH = f"/{SUBPROTOCOL}"
# A rename is broadcast to everyone, so it costs more of the sender's budget than an add.
RENAME_COST = 10
_LEGACY_NUMBER = re.compile(r"[+-]?[0-9]{1,20}")


def describe_address(connection: ServerConnection) -> str:
    address = connection.remote_address
    if not address:
        return "unknown"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def close_draining(connection: ServerConnection, code: int, reason: str) -> None:
    """Close, discarding what the peer still sends meanwhile.

    A flooder's unread frames fill the receive queue, websockets stops
    reading, and the peer's close reply would sit unread until close_timeout.
    """

    async def discard() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await connection.recv()

    draining = asyncio.create_task(discard())
    try:
        await connection.close(code, reason)
    finally:
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining


def speaks_tally(connection: ServerConnection) -> bool:
    """True for tally.v1: asked for as a subprotocol, or by path.

    The path is for generic clients that cannot set a subprotocol, such as
    ``python -m websockets ws://127.0.0.1:8765/tally.v1``.
    """
    request = connection.request
    return connection.subprotocol == SUBPROTOCOL or (request is not None and request.path == TALLY_PATH)


class Flooding(Exception):
    """A connection kept sending past its rate after being told to slow down."""


class Pace:
    """One connection's message budget: a token bucket, and strikes for ignoring it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bucket = TokenBucket(limits.rate, limits.burst)
        self.strikes = TokenBucket(1.0, limits.flood_strikes)

    def allow(self, cost: float = 1.0) -> bool:
        """True if the message may be served; raises Flooding once refusals pile up."""
        if self.bucket.take(cost):
            return True
        if not self.strikes.take():
            raise Flooding
        return False

    @property
    def refusal(self) -> str:
        return f"too many messages: at most {self.limits.rate:g} a second (bursts of {self.limits.burst})"


class Handler:
    """Serves one connection at a time per call; everything shared is injected."""

    def __init__(self, ledger: Ledger, roster: Roster, fanout: Fanout, limits: Limits) -> None:
        self.ledger = ledger
        self.roster = roster
        self.fanout = fanout
        self.limits = limits
        self.open_connections = 0

    async def __call__(self, connection: ServerConnection) -> None:
        client_id = self._new_client_id()
        address = describe_address(connection)
        pace = Pace(self.limits)
        self.open_connections += 1
        try:
            if speaks_tally(connection):
                await self._serve_dashboard(connection, client_id, address, pace)
            else:
                await self._serve_legacy(connection, client_id, address, pace)
        except ConnectionClosed:
            pass
        except Flooding:
            log.warning("close  %s from %s: kept flooding after rate_limited", client_id, address)
            await close_draining(connection, CloseCode.POLICY_VIOLATION, "flooding")
        finally:
            self.open_connections -= 1
            self.fanout.unsubscribe(connection)
            left = self.roster.leave(client_id)
            if left is not None:
                self.fanout.publish(left, soon=False)
                log.info("leave  %s %r from %s", client_id, left.client.name, address)

    def _new_client_id(self) -> str:
        while (client_id := secrets.token_hex(4)) in self.roster:
            pass
        return client_id

    # -- tally.v1 -------------------------------------------------------------

    async def _serve_dashboard(self, connection: ServerConnection, client_id: str, address: str, pace: Pace) -> None:
        hello = await self._await_hello(connection, client_id, pace)
        if hello is None:
            return  # closed before saying hello
        name, session = hello
        # Presence may wait a moment for company; the welcome follows at that flush.
        self.fanout.publish(self.roster.join(client_id, name, address), soon=False)
        log.info("join   %s %r from %s", client_id, name, address)
        self.fanout.welcome(connection, client_id)
        async for frame in connection:
            try:
                message = decode_client(frame)
            except ProtocolError as exc:
                # Garbage costs budget like anything else, so a garbage flood is a flood.
                error = exc if pace.allow() else ProtocolError(ErrorCode.RATE_LIMITED, pace.refusal)
                self._refuse(connection, client_id, error.to_error())
                continue
            try:
                if not pace.allow(RENAME_COST if isinstance(message, Rename) else 1):
                    raise ProtocolError(ErrorCode.RATE_LIMITED, pace.refusal, op=getattr(message, "op", None))
                self._serve_message(connection, client_id, session, message)
            except ProtocolError as exc:
                self._refuse(connection, client_id, exc.to_error())

    def _serve_message(
        self, connection: ServerConnection, client_id: str, session: str, message: ClientMessage
    ) -> None:
        if isinstance(message, Add):
            self._check_amount(message.amount, message.op)
            request = AddRequest(message.amount, self.roster[client_id].name, client_id, session, message.op)
            self.ledger.submit(request).add_done_callback(partial(self._answer, connection, client_id, message.op))
        elif isinstance(message, Rename):
            self.fanout.publish(self.roster.rename(client_id, check_name(message.name)), soon=False)
        else:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "hello was already received on this connection")

    def _check_amount(self, amount: int, op: str | None) -> None:
        if abs(amount) > self.limits.max_amount:
            raise ProtocolError(
                ErrorCode.INVALID_AMOUNT,
                f"an add must be between -{self.limits.max_amount:,} and {self.limits.max_amount:,}",
                op=op,
            )

    async def _await_hello(self, connection: ServerConnection, client_id: str, pace: Pace) -> tuple[str, str] | None:
        """The (name, session) of the first valid hello; every other message is refused."""
        async for frame in connection:
            try:
                if not pace.allow():
                    raise ProtocolError(ErrorCode.RATE_LIMITED, pace.refusal)
                message = decode_client(frame)
                if not isinstance(message, Hello):
                    raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello first", op=getattr(message, "op", None))
                return check_name(message.name), message.session
            except ProtocolError as exc:
                self._refuse(connection, client_id, exc.to_error())
        return None

    def _answer(self, connection: ServerConnection, client_id: str, op: str, future: asyncio.Future[Outcome]) -> None:
        # Runs as the ledger resolves the add, right after it published the
        # update; the fan-out sends the answer after that update, batched with
        # the other answers of the same commit, without a task per add.
        outcome = future.result()
        match outcome:
            case Applied(record=record):
                self.fanout.send(connection, Ack(op=op, seq=record.seq))
            case Duplicate(seq=seq):
                self.fanout.send(connection, Ack(op=op, seq=seq))
            case Refused(code=code, message=message):
                log.info("refuse %s %s: %s", client_id, code, message)
                self.fanout.send(connection, Error(code=code, message=message, op=op))

    def _refuse(self, connection: ServerConnection, client_id: str, error: Error) -> None:
        # Through the fan-out's queue for this connection, so answers stay in the order
        # of the messages they answer, acks included.
        log.info("refuse %s %s: %s", client_id, error.code, error.message)
        self.fanout.send(connection, error)

    # -- the original blog client ----------------------------------------------

    async def _serve_legacy(self, connection: ServerConnection, client_id: str, address: str, pace: Pace) -> None:
        self.fanout.publish(self.roster.join(client_id, LEGACY_NAME, address), soon=False)
        log.info("join   %s %r from %s", client_id, LEGACY_NAME, address)
        async for frame in connection:
            if pace.allow():
                reply = await self._legacy_reply(frame, client_id)
            else:
                reply = self._legacy_refusal(client_id, ErrorCode.RATE_LIMITED, pace.refusal)
            await connection.send(reply)

    async def _legacy_reply(self, frame: str | bytes, client_id: str) -> str:
        text = frame.strip() if isinstance(frame, str) else None
        if text is None or not _LEGACY_NUMBER.fullmatch(text):
            return self._legacy_refusal(client_id, ErrorCode.INVALID_AMOUNT, "send a whole number such as 5 or -3")
        amount = int(text)
        try:
            self._check_amount(amount, None)
        except ProtocolError as exc:
            return self._legacy_refusal(client_id, exc.code, exc.message)
        outcome = await self.ledger.submit(AddRequest(amount, LEGACY_NAME, client_id))
        match outcome:
            case Applied(record=record):
                return f"Server records total={record.total}"
            case Refused(code=code, message=message):
                return self._legacy_refusal(client_id, code, message)
            case Duplicate():  # legacy adds carry no op id, so nothing can repeat them
                return f"Server records total={self.ledger.total}"

    def _legacy_refusal(self, client_id: str, code: str, message: str) -> str:
        log.info("refuse %s %s: %s", client_id, code, message)
        return f"error: {code}: {message}"
