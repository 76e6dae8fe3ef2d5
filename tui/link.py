"""The dashboard's link to the server: connect, reconnect, resend, and post what happens.

The only module of the dashboard that owns a socket or a timer. What to send
is the outbox's (:mod:`tui.outbox`), what was received the inbox's
(:mod:`tui.inbox`), why a session ended :func:`tui.retry.classify`'s; the link
runs them on one event loop and posts plain events (:mod:`tui.messages`) to
one callable. It imports no Textual, so the script commands load none.

Every add gets an op id when typed and stays pending, saved on disk, until
its ack; on every (re)connect all pending adds are sent again with their
original op ids, and the server's per-session dedupe makes each one count
exactly once. Adds are sent no faster than the server's rate allows, so a
long queue typed offline drains without a refusal. Pending adds are only
ever sent to the ledger they were typed for. While the server's store is
away they wait, and go again by themselves when it is back (the inbox says
when; the link owns the probe's timer for a server that never says).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.typing import Subprotocol

from tally.server.protocol import (
    SUBPROTOCOL,
    ClientsRequest,
    Error,
    Hello,
    HistoryRequest,
    ServerMessage,
    Welcome,
    decode_server_frame,
    encode,
)
from tally.server.protocol.messages import SortKey
from tally.tui.inbox import FlushAt, Inbox, ProbeAfter, ResendAfter, Timer
from tally.tui.messages import (
    Connected,
    Connecting,
    ConnectionLost,
    Event,
    GaveUp,
    LatencyMeasured,
    LedgerChanged,
    ServerRefused,
)
from tally.tui.options import LinkOptions
from tally.tui.outbox import Outbox, Request
from tally.tui.pending import Pending, PendingAdd
from tally.tui.retry import FAILURES, PACE_SHARE, RESYNC, GiveUp, Pace, Stalled, Verdict, backoff, classify
from tally.tui.urls import unix_path

__all__ = ["Link", "LinkOptions"]  # LinkOptions is tui.options', here too for whoever builds a link


class Link:
    def __init__(
        self,
        options: LinkOptions,
        post: Callable[[Event], object],
        *,
        pending: Pending | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``post`` takes every event, in order; ``pending`` is the adds on disk (none kept without one)."""
        self.options = options
        self.urls = options.urls
        self._index = 0
        self.post = post
        self.clock = clock
        self._headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        self.outbox = Outbox(pending if pending is not None else Pending(), options.name)
        # Through self.post, looked up at each call: tests wrap it to watch what is posted.
        self.inbox = Inbox(
            self.outbox,
            lambda event: self.post(event),
            clock=clock,
            flush_interval=options.flush_interval,
            flush_every=options.flush_every,
            retry_later=options.retry_later,
            store_probe=options.store_probe,
        )
        self._connection: ClientConnection | None = None
        self._session_number = 0  # a timer set in one session does nothing in the next
        self._ready = asyncio.Event()  # something waits in the outbox
        self._pace = Pace(now=clock())
        self._wake = asyncio.Event()
        self._flush: asyncio.TimerHandle | None = None
        self._save: asyncio.Handle | None = None
        self._requests = 0

    @property
    def url(self) -> str:
        """The server tried last (or connected to)."""
        return self.urls[self._index]

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def pending(self) -> Pending:
        return self.outbox.pending

    @property
    def held(self) -> bool:
        return self.outbox.held

    @property
    def unsent(self) -> set[str]:
        return self.outbox.unsent

    # -- called by the app --------------------------------------------------------

    def add(self, amount: int, *, text: str = "", undo: str | None = None) -> PendingAdd:
        """Queue an add; it is sent now if connected, else on reconnect. Returns it, pending."""
        add = self.outbox.add(amount, text=text, undo=undo)
        self._save_soon()  # on disk even if it is not sent now: a kill -9 must not lose it
        self._ready.set()
        return add

    @property
    def name(self) -> str:
        """The name we go by now (adds typed earlier keep theirs)."""
        return self.outbox.name

    def rename(self, name: str) -> None:
        """Change our name; the server is told once the adds typed under the old one are out (offline: the hello)."""
        self.outbox.rename(name)
        self._ready.set()

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
        self._send(request)
        return request.id

    def _send(self, message: Request) -> None:
        if self.outbox.request(message):
            self._ready.set()

    def reconnect_now(self) -> None:
        """Skip the backoff wait, or drop the current connection and start afresh."""
        self._wake.set()

    def keep_for_other_ledger(self, fresh: Pending) -> Pending:
        """After :class:`LedgerChanged`: set the held adds aside and carry on with ``fresh``; returns the old."""
        return self.outbox.keep_for_other_ledger(fresh, self.inbox.ledger)

    def discard_held(self) -> None:
        """After :class:`LedgerChanged`: drop the held adds and serve this ledger."""
        self.outbox.discard(self.inbox.ledger)

    # -- the worker -----------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected forever: connect, sync, serve; on failure try the next URL, and back off between rounds."""
        failures = 0  # attempts since the last welcome
        while True:
            self.post(Connecting(self.url, failures + 1))
            verdict, afresh = await self._session()
            failures = 0 if afresh else failures + 1
            if self.options.once and (self.held or not self.pending or not verdict.retry):
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
            self.post(ConnectionLost(verdict.reason, self.clock() + delay, failures, verdict.resync))
            await self._sleep(delay)

    async def _session(self) -> tuple[Verdict, bool]:
        """One connection, from connect to close: why it ended, and whether to start the backoff afresh
        (the server welcomed us, or we just started our own)."""
        welcomed = False
        try:
            async with self._connect() as connection:
                await self._sync(connection)
                welcomed = True
                if not (self.options.once and (self.held or not self.pending)):
                    await self._serve(connection)
            return Verdict("reconnecting as asked"), welcomed
        except FAILURES as exc:
            start_server = self.options.start_server
            if isinstance(exc, ConnectionRefusedError | FileNotFoundError) and start_server is not None:
                # Our own local server went away (killed, or idle-exited): start another.
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(start_server)
                return classify(exc), True  # retry at once
            return classify(exc), welcomed
        finally:
            self._connection = None
            self._session_number += 1
            self.outbox.closed()
            self._flush_now()
            self.pending.checkpoint()  # where the stream stands too: a dashboard started later resumes from it

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
        tls = (self.options.tls or True) if self.url.startswith("wss:") else None
        return connect(self.url, ssl=tls, **options)

    async def _sync(self, connection: ClientConnection) -> None:
        """Say hello, take the snapshot, and queue every pending add meant for this ledger."""
        if connection.subprotocol != SUBPROTOCOL:
            raise GiveUp(f"the server does not speak {SUBPROTOCOL}: is it a Tally server, and a recent one?")
        hello = Hello(name=self.outbox.hello_name(), secret=self.pending.secret, role=self.options.role,
                      resume=self.inbox.resume(), since=self.inbox.since)  # fmt: skip
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
        self._connection = connection
        if welcome.limits is not None:
            self._pace = Pace(welcome.limits.rate * PACE_SHARE, max(1.0, welcome.limits.burst / 2), now=self.clock())
        ledger = self.pending.ledger
        if self.outbox.welcomed(welcome.ledger):
            self.post(LedgerChanged(ledger, welcome.ledger, len(self.pending)))
        self.post(Connected(welcome))
        # After: the store's state may pause what the outbox just queued, and is told after the snapshot.
        self._set(self.inbox.welcomed(welcome))
        self._ready.set()

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
            self.outbox.save()  # what this frame settled is off the disk too, or a restart would resend it
            if self.outbox.ready:
                self._ready.set()  # the store is back, or a name is to be said
            if self.options.once and not self.pending:
                self._wake.set()  # all sent: close

    async def _send_forever(self, connection: ClientConnection) -> None:
        outbox = self.outbox
        while True:
            if not outbox.ready:
                self._ready.clear()
                await self._ready.wait()
                continue
            if outbox.add_is_next:
                await asyncio.sleep(self._pace.take(self.clock()))
            message = outbox.next_message()  # an add is on disk before it leaves the outbox
            if message is not None:
                await connection.send(encode(message))

    async def _measure_latency(self, connection: ClientConnection) -> None:
        while True:
            pong = await connection.ping()
            try:
                async with asyncio.timeout(self.options.stall_timeout):
                    latency = await pong
            except TimeoutError:
                # A stalled path never closes by itself; a close frame would wait behind it.
                connection.transport.abort()
                raise Stalled(f"no answer from the server for {self.options.stall_timeout:g} s") from None
            self.post(LatencyMeasured(latency))
            await asyncio.sleep(self.options.latency_interval)

    async def _close_when_asked(self, connection: ClientConnection) -> None:
        await self._wake.wait()
        await connection.close()

    def _receive(self, message: ServerMessage) -> None:
        self._set(self.inbox.take(message))

    # -- timers: the inbox's, the outbox's save, the waits ------------------------------

    def _set(self, timer: Timer | None) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(timer, FlushAt):
            if self._flush is not None:
                self._flush.cancel()
            self._flush = loop.call_later(max(0.0, timer.when - self.clock()), self._flush_now)
        elif isinstance(timer, ResendAfter):
            loop.call_later(timer.delay, self._resend, self._session_number, timer.op)
        elif isinstance(timer, ProbeAfter):
            loop.call_later(timer.delay, self._probe, self._session_number, timer.outage)

    def _flush_now(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self.inbox.flush()

    def _resend(self, session: int, op: str) -> None:
        if session == self._session_number:  # a later session resends everything anyway
            self.outbox.retry(op)
            self._ready.set()

    def _probe(self, session: int, outage: int) -> None:
        if session == self._session_number:  # a later session's welcome says how the store is
            self._set(self.inbox.probe(outage))
            if self.outbox.ready:
                self._ready.set()

    def _save_soon(self) -> None:
        """Save once the current burst (a paste) has been typed: one write, not one per add."""
        if self._save is None:
            self._save = asyncio.get_running_loop().call_soon(self._save_now)

    def _save_now(self) -> None:
        self._save = None
        self.outbox.save()

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _wait_for_user(self) -> None:
        self._wake.clear()
        await self._wake.wait()
