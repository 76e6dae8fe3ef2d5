"""The dashboard's link to the server: connect, reconnect, resend, and post what happens.

This is the only module of the dashboard that imports ``websockets``. Its
``run`` coroutine lives in one Textual worker and only posts messages; the app
calls ``add``, ``rename`` and ``reconnect_now`` from the same event loop.

Every add gets an op id when typed and stays pending until its ack; on every
(re)connect all pending adds are sent again with their original op ids, and
the server's per-session dedupe makes each one count exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Callable

from textual.message import Message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from server.protocol import (
    SUBPROTOCOL,
    Ack,
    Add,
    Error,
    ErrorCode,
    Hello,
    Presence,
    ProtocolError,
    Rename,
    Update,
    Welcome,
    decode_server_frame,
    encode,
)
from tui.messages import (
    Connected,
    Connecting,
    ConnectionLost,
    GaveUp,
    LatencyMeasured,
    PendingChanged,
    PresenceChanged,
    ServerRefused,
    UpdatesArrived,
)
from tui.model import Model
from tui.pending import Pending
from tui.retry import backoff, describe_close, describe_failure, describe_refusal

__all__ = ["Link"]

# Repaint at most this often when updates pour in; the latest total always wins.
FLUSH_INTERVAL = 1 / 30
LATENCY_INTERVAL = 2.0
RETRY_UNAVAILABLE_AFTER = 2.0


class Resync(Exception):
    """We missed an update (a gap in seq): reconnect for a fresh snapshot."""


class Stalled(Exception):
    """The server stopped answering pings: the path to it is gone, whatever TCP says."""


class Link:
    def __init__(
        self,
        url: str,
        model: Model,
        post: Callable[[Message], object],
        *,
        session: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        stall_timeout: float = 10.0,
        start_server: Callable[[], object] | None = None,
    ) -> None:
        """``start_server``, if given, is called (in a thread) when nothing answers at ``url``.

        ``token`` is sent as a bearer token and never shown; ``tls`` verifies a wss://
        server (default: the system's trusted CAs); a ping unanswered for
        ``stall_timeout`` seconds means the connection is dead.
        """
        self.url = url
        self.model = model
        self.post = post
        self.start_server = start_server
        self.stall_timeout = stall_timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._tls = tls
        self.session = session or uuid.uuid4().hex
        self.seq = 0  # the last update received (the model has the last one shown)
        self._connection: ClientConnection | None = None
        self._outbox: asyncio.Queue[Add | Rename] = asyncio.Queue()
        self._updates: list[Update] = []
        self._flush: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def pending(self) -> Pending:
        return self.model.pending

    # -- called by the app --------------------------------------------------------

    def add(self, amount: int) -> str:
        """Queue an add; it is sent now if connected, else on reconnect. Returns its op id."""
        pending = self.pending.add(amount, at=time.time())
        self.post(PendingChanged())
        self._outbox.put_nowait(Add(op=pending.op, amount=amount))
        return pending.op

    def rename(self, name: str) -> None:
        """Change our name; while offline, the next hello carries it."""
        self.model.name = name
        if self.connected:
            self._outbox.put_nowait(Rename(name=name))

    def reconnect_now(self) -> None:
        """Skip the backoff wait, or drop the current connection and start afresh."""
        self._wake.set()

    # -- the worker -----------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected forever: connect, sync, serve, and back off between attempts."""
        attempt = 0
        refused = False
        while True:
            attempt += 1
            self.post(Connecting(self.url, attempt))
            try:
                if refused and self.start_server is not None:
                    # Our local server went away (killed, or idle-exited): start another.
                    await asyncio.to_thread(self.start_server)
                refused = False
                async with connect(
                    self.url,
                    subprotocols=[Subprotocol(SUBPROTOCOL)],
                    additional_headers=self._headers,
                    # wss:// verifies against the system's CAs unless given a context.
                    ssl=(self._tls or True) if self.url.startswith("wss:") else None,
                    open_timeout=5,
                    close_timeout=2,
                    ping_interval=None,  # _measure_latency pings, and notices stalls sooner
                    max_size=2**20,
                ) as connection:
                    await self._sync(connection)
                    attempt = 0
                    await self._serve(connection)
                reason = "reconnecting as asked"
            except Resync:
                reason, attempt = "missed an update; resynchronising", 0
            except Stalled as exc:
                reason = str(exc)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500:
                    self.post(GaveUp(describe_refusal(status)))
                    await self._wait_for_user()
                    attempt = 0
                    continue
                reason = f"the server answered HTTP {status}"
            except ssl.SSLCertVerificationError as exc:
                # Retrying will not make it trusted.
                self.post(GaveUp(f"the server's certificate is not trusted ({exc.verify_message}); see --cafile"))
                await self._wait_for_user()
                attempt = 0
                continue
            except InvalidURI as exc:
                # check_url ran at start; this is whatever websockets still finds wrong with it.
                self.post(GaveUp(f"bad URL: {exc}"))
                await self._wait_for_user()
                attempt = 0
                continue
            except ConnectionClosed as exc:
                reason = describe_close(
                    we_closed_first=exc.sent is not None and exc.rcvd_then_sent is False,
                    code=None if exc.rcvd is None else exc.rcvd.code,
                    reason="" if exc.rcvd is None else exc.rcvd.reason,
                )
            except (OSError, InvalidHandshake, TimeoutError, ProtocolError) as exc:
                reason = describe_failure(exc)
                refused = isinstance(exc, ConnectionRefusedError)
            finally:
                self._connection = None
                self._flush_updates()
            delay = 0.0 if attempt == 0 else backoff(attempt)
            self.post(ConnectionLost(reason, time.monotonic() + delay, attempt))
            await self._sleep(delay)

    async def _sync(self, connection: ClientConnection) -> None:
        """Say hello, take the snapshot, and queue every pending add for resending."""
        await connection.send(encode(Hello(name=self.model.name, session=self.session)))
        welcome = None
        async with asyncio.timeout(10):
            while welcome is None:
                for message in decode_server_frame(await connection.recv()):
                    if isinstance(message, Welcome):
                        welcome = message  # always a frame of its own: nothing follows it here
                    elif isinstance(message, Error):
                        # A name the server refuses: show it and keep whatever name it accepts.
                        self.post(ServerRefused(message))
                        raise ProtocolError(message.code, message.message)
        self.seq = welcome.seq
        self._connection = connection
        self._outbox = asyncio.Queue()
        for pending in self.pending:
            self._outbox.put_nowait(Add(op=pending.op, amount=pending.amount))
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

    async def _send_forever(self, connection: ClientConnection) -> None:
        while True:
            message = await self._outbox.get()
            # An add acked meanwhile (a resend racing its first ack) need not go out again.
            if isinstance(message, Add) and message.op not in self.pending:
                continue
            await connection.send(encode(message))

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

    def _receive(self, message: Welcome | Update | Presence | Ack | Error) -> None:
        if isinstance(message, Update):
            if message.seq <= self.seq:
                return  # already shown
            if message.seq != self.seq + 1:
                raise Resync(f"expected seq {self.seq + 1}, got {message.seq}")
            self.seq = message.seq
            self._updates.append(message)
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._flush_updates)
            return
        # Anything else is shown after the updates that came before it.
        self._flush_updates()
        if isinstance(message, Ack):
            if self.pending.settle(message.op) is not None:
                self.post(PendingChanged())
        elif isinstance(message, Error):
            self._refused(message)
        elif isinstance(message, Presence):
            self.post(PresenceChanged(message))

    def _refused(self, error: Error) -> None:
        pending = None if error.op is None else self.pending.get(error.op)
        if pending is not None:
            if error.code == ErrorCode.UNAVAILABLE:
                # Nothing was stored; the same op id is safe to send again shortly.
                asyncio.get_running_loop().call_later(
                    RETRY_UNAVAILABLE_AFTER, self._outbox.put_nowait, Add(op=pending.op, amount=pending.amount)
                )
            else:
                self.pending.settle(pending.op)
                self.post(PendingChanged())
        self.post(ServerRefused(error))

    def _flush_updates(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._updates:
            self.post(UpdatesArrived(self._updates))
            self._updates = []

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _wait_for_user(self) -> None:
        self._wake.clear()
        await self._wake.wait()
