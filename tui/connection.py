"""The dashboard's link to the server: connect, reconnect, resend, and post what happens.

This is the only module of the dashboard that imports ``websockets``. Its
``run`` coroutine lives in one Textual worker and only posts messages; the app
calls ``add``, ``rename``, the requests and ``reconnect_now`` from the same
event loop.

Every add gets an op id when typed and stays pending, saved on disk, until
its ack; on every (re)connect all pending adds are sent again with their
original op ids, and the server's per-session dedupe makes each one count
exactly once. Adds are sent no faster than the server's rate allows, so a
long queue typed offline drains without a refusal. Pending adds are only
ever sent to the ledger they were typed for.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from textual.message import Message
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from tally.server.protocol import (
    SUBPROTOCOL,
    Add,
    ClientsRequest,
    Error,
    Hello,
    HistoryRequest,
    ProtocolError,
    Rename,
    Resume,
    ServerMessage,
    Welcome,
    decode_server_frame,
    encode,
)
from tally.server.protocol.messages import Role, SortKey
from tally.tui.inbox import Inbox, Resync
from tally.tui.messages import (
    Connected,
    Connecting,
    ConnectionLost,
    GaveUp,
    LatencyMeasured,
    LedgerChanged,
    PendingChanged,
    ServerRefused,
)
from tally.tui.model import Model
from tally.tui.pending import Pending
from tally.tui.retry import PACE_SHARE, Pace, Verdict, backoff, describe_close, describe_failure, describe_status
from tally.tui.urls import split_urls, unix_path

__all__ = ["Link"]

LATENCY_INTERVAL = 2.0


RESYNC = "missed an update; resynchronising"


class Stalled(Exception):
    """The server stopped answering pings: the path to it is gone, whatever TCP says."""


class GiveUp(Exception):
    """Retrying will not help; wait for the user."""


Outgoing = str | Rename | ClientsRequest | HistoryRequest  # an op id to send, or a message


class Link:
    def __init__(
        self,
        url: str | Sequence[str],
        model: Model,
        post: Callable[[Message], object],
        *,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        stall_timeout: float = 10.0,
        start_server: Callable[[], object] | None = None,
        role: Role = "person",
        once: bool = False,
    ) -> None:
        """``url`` is one server, or several of one cluster to fail over between (also as a comma list).

        ``start_server``, if given, is called (in a thread) when nothing answers at ``url``.

        ``token`` is sent as a bearer token and never shown; ``tls`` verifies a wss://
        server (default: the system's trusted CAs); a ping unanswered for
        ``stall_timeout`` seconds means the connection is dead. ``once``: stop as
        soon as no add is pending (sending what an earlier dashboard left).
        """
        self.urls = split_urls(url)
        self._index = 0
        self.model = model
        self.post = post
        self.start_server = start_server
        self.stall_timeout = stall_timeout
        self.role = role
        self.once = once
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._tls = tls
        # Through self.post, looked up at each call: tests wrap it to watch what is posted.
        self.inbox = Inbox(model, lambda message: self.post(message), all_acked=self._all_acked)
        self._connection: ClientConnection | None = None
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._pace = Pace()
        self._wake = asyncio.Event()
        self._requests = 0
        # Pending adds wait here while they are meant for another ledger than the server's.
        self.held = False
        # Op ids typed here and not sent yet. Every other pending add may have reached the server
        # (sent by this dashboard, or by an earlier one that left it on disk), and may have counted.
        # Only ever as large as what waits to be sent, unlike a record of everything sent.
        self.unsent: set[str] = set()

    @property
    def url(self) -> str:
        """The server tried last (or connected to)."""
        return self.urls[self._index]

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def pending(self) -> Pending:
        return self.model.pending

    # -- called by the app --------------------------------------------------------

    def add(self, amount: int, *, text: str = "", undo: str | None = None) -> str:
        """Queue an add; it is sent now if connected, else on reconnect. Returns its op id."""
        pending = self.pending.add(amount, text=text, undo=undo)
        self.unsent.add(pending.op)
        self.inbox.save_soon()  # on disk even if it is not sent now: a kill -9 must not lose it
        self.post(PendingChanged())
        if self.connected and not self.held:
            self._outbox.put_nowait(pending.op)
        return pending.op

    def rename(self, name: str) -> None:
        """Change our name; while offline, the next hello carries it."""
        self.model.rename(name)
        if self.connected:
            self._outbox.put_nowait(Rename(name=name))

    def request_clients(
        self, *, offset: int = 0, limit: int = 50, sort: SortKey = "name", descending: bool = False, filter: str = ""
    ) -> str | None:
        """Ask for a page of the people online; None if not connected. Returns the request's id."""
        return self._request(lambda id: ClientsRequest(id, offset, limit, sort, descending, filter))

    def request_history(self, since: float, points: int = 200) -> str | None:
        """Ask for the total since Unix time ``since``; None if not connected."""
        return self._request(lambda id: HistoryRequest(id, since, points))

    def _request(self, build: Callable[[str], ClientsRequest | HistoryRequest]) -> str | None:
        if not self.connected:
            return None
        self._requests += 1
        request = build(f"q{self._requests}")
        self._outbox.put_nowait(request)
        return request.id

    def reconnect_now(self) -> None:
        """Skip the backoff wait, or drop the current connection and start afresh."""
        self._wake.set()

    def keep_for_other_ledger(self, fresh: Pending) -> Pending:
        """After :class:`LedgerChanged`: set the held adds aside and carry on with ``fresh``; returns the old."""
        old, self.model.pending = self.model.pending, fresh
        fresh.bind(self.model.ledger)
        fresh.save()
        self.held = False
        self.unsent.clear()  # those were the held adds' op ids; the next ones start anew
        self.post(PendingChanged())
        return old

    def discard_held(self) -> None:
        """After :class:`LedgerChanged`: drop the held adds and serve this ledger."""
        self.pending.clear()
        self.pending.bind(self.model.ledger)
        self.pending.save()
        self.held = False
        self.unsent.clear()  # those were the held adds' op ids; the next ones start anew
        self.post(PendingChanged())

    # -- the worker -----------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected forever: connect, sync, serve; on failure try the next URL, and back off between rounds."""
        failures = 0  # attempts since the last welcome
        while True:
            self.post(Connecting(self.url, failures + 1))
            verdict, afresh = await self._session()
            failures = 0 if afresh else failures + 1
            if self.once and (self.held or not self.pending or not verdict.retry):
                return
            if not verdict.retry:
                self.post(GaveUp(verdict.reason))
                await self._wait_for_user()
                failures = 0
                continue
            if len(self.urls) > 1 and verdict.reason not in ("reconnecting as asked", RESYNC):
                self._index = (self._index + 1) % len(self.urls)  # fail over to the next server
            # At once after a session that worked, or while other servers are left to try in this round.
            rounds, rest = divmod(failures, len(self.urls))
            delay = max(verdict.after, backoff(rounds) if failures and not rest else 0.0)
            self.post(ConnectionLost(verdict.reason, time.monotonic() + delay, failures))
            await self._sleep(delay)

    async def _session(self) -> tuple[Verdict, bool]:
        """One connection, from connect to close: why it ended, and whether to start the backoff afresh
        (the server welcomed us, or we just started our own)."""
        welcomed = False
        try:
            async with self._connect() as connection:
                await self._sync(connection)
                welcomed = True
                if not (self.once and (self.held or not self.pending)):
                    await self._serve(connection)
            return Verdict("reconnecting as asked"), welcomed
        except (Resync, GiveUp, Stalled, InvalidStatus, InvalidMessage, InvalidURI, ConnectionClosed) as exc:
            return _verdict(exc), welcomed
        except ssl.SSLCertVerificationError as exc:
            reason = f"the server's certificate is not trusted ({exc.verify_message}); see --cafile"
            return Verdict(reason, retry=False), welcomed
        except (OSError, InvalidHandshake, TimeoutError, ProtocolError) as exc:
            if isinstance(exc, ConnectionRefusedError | FileNotFoundError) and self.start_server is not None:
                # Our own local server went away (killed, or idle-exited): start another.
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self.start_server)
                return Verdict(describe_failure(exc)), True  # retry at once
            return Verdict(describe_failure(exc)), welcomed
        finally:
            self._connection = None
            self.inbox.flush()

    def _connect(self) -> contextlib.AbstractAsyncContextManager[ClientConnection]:
        """A connection to the current URL (a Unix socket, or ws:// and wss://)."""
        options: dict[str, Any] = {
            "subprotocols": [Subprotocol(SUBPROTOCOL)],
            "additional_headers": self._headers,
            "open_timeout": 5,
            "close_timeout": 2,
            "ping_interval": None,  # _measure_latency pings, and notices stalls sooner
            "max_size": 2**20,
        }
        path = unix_path(self.url)
        if path is not None:
            return unix_connect(path, uri="ws://localhost/", **options)
        # wss:// verifies against the system's CAs unless given a context.
        tls = (self._tls or True) if self.url.startswith("wss:") else None
        return connect(self.url, ssl=tls, **options)

    async def _sync(self, connection: ClientConnection) -> None:
        """Say hello, take the snapshot, and queue every pending add meant for this ledger."""
        if connection.subprotocol != SUBPROTOCOL:
            raise GiveUp(f"the server does not speak {SUBPROTOCOL}: is it a Tally server, and a recent one?")
        model, pending = self.model, self.pending
        resume = Resume(model.ledger, model.epoch, self.inbox.seq) if model.ledger else None
        hello = Hello(name=model.name, secret=pending.secret, role=self.role, resume=resume)
        await connection.send(encode(hello))
        welcome = None
        async with asyncio.timeout(10):
            while welcome is None:
                for message in decode_server_frame(await connection.recv()):
                    if isinstance(message, Welcome):
                        welcome = message  # always a frame of its own: nothing follows it here
                    elif isinstance(message, Error):
                        # A name the server refuses: show it and keep whatever name it accepts.
                        self.post(ServerRefused(message))
                        raise GiveUp(f"the server refused our hello: {message.message}")
        self.inbox.seq = welcome.seq
        self._connection = connection
        self._outbox = asyncio.Queue()
        self.inbox.resend = self._outbox.put_nowait  # this session's: a later one resends everything anyway
        if welcome.limits is not None:
            self._pace = Pace(welcome.limits.rate * PACE_SHARE, max(1.0, welcome.limits.burst / 2))
        self.held = bool(pending) and pending.ledger not in ("", welcome.ledger)
        if self.held:
            self.post(LedgerChanged(pending.ledger, welcome.ledger, len(pending)))
        else:
            pending.bind(welcome.ledger)
            for add in pending:
                self._outbox.put_nowait(add.op)
        pending.save()
        self.post(Connected(welcome))

    async def _serve(self, connection: ClientConnection) -> None:
        """Run the session's loops until the first one ends; its outcome is the session's.

        Receiving ends when the connection does (raising why); sending and
        pinging fail when it closes; a reconnect request closes it.
        """
        self._wake.clear()
        loops = [
            asyncio.create_task(self._receive_forever(connection)),
            asyncio.create_task(self._send_forever(connection)),
            asyncio.create_task(self._measure_latency(connection)),
            asyncio.create_task(self._close_when_asked(connection)),
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        for loop in done:
            loop.result()  # re-raise the failure that ended the session, if any

    async def _receive_forever(self, connection: ClientConnection) -> None:
        while True:
            # recv(), unlike `async for`, raises on a clean close too, with the code that says why.
            for message in decode_server_frame(await connection.recv()):
                self._receive(message)
            self.inbox.end_of_frame()

    async def _send_forever(self, connection: ClientConnection) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, str):
                add = self.pending.get(item)
                if add is None:
                    continue  # acked meanwhile (a resend racing its first ack): need not go again
                await self._pace.wait()
                self.pending.save()  # on disk before it can reach the server
                self.unsent.discard(add.op)  # before: a send cut short may still have reached the server
                await connection.send(encode(Add(op=add.op, amount=add.amount, undo=add.undo)))
            else:
                await connection.send(encode(item))

    async def _measure_latency(self, connection: ClientConnection) -> None:
        while True:
            pong = await connection.ping()
            try:
                async with asyncio.timeout(self.stall_timeout):
                    latency = await pong
            except TimeoutError:
                # A stalled path never closes by itself; a close frame would wait behind it.
                connection.transport.abort()
                raise Stalled(f"no answer from the server for {self.stall_timeout:g} s") from None
            self.post(LatencyMeasured(latency))
            await asyncio.sleep(LATENCY_INTERVAL)

    async def _close_when_asked(self, connection: ClientConnection) -> None:
        await self._wake.wait()
        await connection.close()

    def _receive(self, message: ServerMessage) -> None:
        self.inbox.take(message)

    def _all_acked(self) -> None:
        if self.once:
            self.pending.save()
            self._wake.set()  # all sent: close

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _wait_for_user(self) -> None:
        self._wake.clear()
        await self._wake.wait()


def _verdict(exc: Exception) -> Verdict:
    """What a failure of one of ours, or of websockets, means for the user and for retrying."""
    if isinstance(exc, Resync):
        return Verdict(RESYNC)
    if isinstance(exc, GiveUp):
        return Verdict(str(exc), retry=False)
    if isinstance(exc, Stalled):
        return Verdict(str(exc))
    if isinstance(exc, InvalidStatus):
        return describe_status(exc.response.status_code, retry_after=exc.response.headers.get("Retry-After"))
    if isinstance(exc, InvalidMessage):
        # A server dying under us accepts and drops connections for a moment, and so does a service that
        # is not HTTP at all: both are worth another try (the status line says which it may be).
        return Verdict("the server closed the connection before its handshake (is it a Tally server?)")
    if isinstance(exc, InvalidURI):
        return Verdict(f"bad URL: {exc}", retry=False)
    if isinstance(exc, ConnectionClosed):
        return Verdict(
            describe_close(
                we_closed_first=exc.sent is not None and exc.rcvd_then_sent is False,
                code=None if exc.rcvd is None else exc.rcvd.code,
                reason="" if exc.rcvd is None else exc.rcvd.reason,
            )
        )
    return Verdict(describe_failure(exc))
