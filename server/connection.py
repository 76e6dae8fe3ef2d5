"""One socket's guards, below the WebSocket protocol: pacing, liveness, and bounded writes.

websockets serves each connection through a :class:`ServerConnection`; Tally's
subclass adds what an attacker's afternoon showed it needs:

- **Pacing by backpressure.** Every frame the peer sends, pings included,
  is charged to the connection's budget and to its address's; a connection
  in debt is simply not read until the debt is paid. A well-behaved client is
  slowed, never refused, and a flood costs the server nothing but the wait.
- **Debt bounded per connection.** A frame is paid for once it is parsed,
  and one read of the socket can hold thousands of pings, parsed at once: a
  connection that owes more than its burst (at least ``FLOOD_DEBT``: it sent a
  flood of control frames past its budget) is closed with 1008, and what it owed past that bound is
  never charged to its address, so the others behind that address never wait
  for its flood.
- **Bounded writes.** Whatever writes to the socket (a pong, an ack, a close
  frame), a connection whose unsent data passes the bound is dropped, so a
  peer that pings and never reads cannot grow the server's memory.
- **Liveness that does not wait on the peer.** websockets' keepalive sends
  its ping behind the data already queued and waits for it to drain, so a
  peer that vanished under traffic was never timed out. Here one sweep
  (:class:`Liveness`) pings idle connections without waiting and aborts any
  that has sent nothing, not even a pong, for ``interval + timeout``.
- **Accounting from accept.** :class:`Gate` counts every socket, handshaking
  or not, by address, so the caps hold before a file descriptor runs out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, CloseCode, Frame
from websockets.protocol import State

from tally.server.limits import Limits, TokenBucket

__all__ = ["Address", "Gate", "Liveness", "TallyConnection", "connection_class", "peer_host"]

log = logging.getLogger("tally.server")

# The most control frames a connection may owe past its budget, at least: far more than a client that
# waits for its answers ever owes (a history request costs 10), far less than one read of a flood holds.
FLOOD_DEBT = 100.0


def peer_host(connection: ServerConnection) -> str:
    """The peer's address without its port (``local`` for a Unix socket)."""
    address = connection.remote_address
    if not address:
        return "local"
    return str(address[0])


@dataclass
class Address:
    """What one address is doing now."""

    connections: int
    connects: TokenBucket
    frames: TokenBucket
    auth: TokenBucket


@dataclass
class Gate:
    """Every socket by address, from accept to close, with the buckets shared by an address."""

    limits: Limits
    capacity: int  # sockets we can hold at all (the file-descriptor limit, less a reserve)
    sockets: int = 0
    addresses: dict[str, Address] = field(default_factory=dict)

    def arrive(self, host: str) -> str | None:
        """Count a new socket; returns why it must be aborted at once, if it must."""
        self.sockets += 1
        entry = self.addresses.get(host)
        if entry is None:
            limits = self.limits
            entry = self.addresses[host] = Address(
                0,
                TokenBucket(limits.connect_rate, limits.connect_burst),
                TokenBucket(limits.address_rate, limits.address_burst),
                TokenBucket(1 / 6, limits.auth_failures),  # one failure forgiven every 6 s
            )
        entry.connections += 1
        if self.sockets > self.capacity:
            return "no file descriptors to spare"
        if entry.connections > 2 * self.limits.max_connections_per_address:
            # Far past the polite refusal: do not even read the request.
            return "too many connections from one address"
        return None

    def depart(self, host: str) -> None:
        self.sockets -= 1
        entry = self.addresses.get(host)
        if entry is not None:
            entry.connections -= 1

    def __getitem__(self, host: str) -> Address:
        return self.addresses[host]

    def forget_idle(self) -> None:
        """Drop addresses with no socket and nothing to remember, so the table stays bounded."""
        for host in [h for h, e in self.addresses.items() if not e.connections and e.connects.full and e.auth.full]:
            del self.addresses[host]


class TallyConnection(ServerConnection):
    """A server connection with pacing, bounded writes and a liveness clock (see the module docstring)."""

    gate: Gate
    limits: Limits
    version = 2  # the protocol version it speaks, once its session knows (0: the bare-number path)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.host = peer_host(self)
        self.last_received = self.loop.time()
        self.pinged_at = 0.0
        self.closing_reason = ""
        # Reading stops while the receive queue is full ("queue", websockets' own flow
        # control) or while the budget is in debt ("budget"); it resumes when neither holds.
        self._paused_for: set[str] = set()
        self.recv_messages.pause = lambda: self._pause("queue")
        self.recv_messages.resume = lambda: self._resume("queue")
        self.budget = TokenBucket(self.limits.rate, self.limits.burst)
        refusal = self.gate.arrive(self.host)
        if refusal is not None:
            self.abort(refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.depart(self.host)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        super().data_received(data)

    def process_event(self, event: object) -> None:
        # Control frames (pings) are answered here, so they are paid for here; data frames
        # are paid for by the session as it serves each message (see spend).
        if isinstance(event, Frame) and event.opcode not in DATA_OPCODES and self.protocol.state is State.OPEN:
            if self.budget.debt() * self.budget.rate + 1.0 > max(self.limits.burst, FLOOD_DEBT):
                # It would owe more than its burst: close it, and charge nobody for the rest.
                self.close_flooder(f"control frames (pings) faster than {self.limits.rate:g} a second")
            else:
                self.charge(1.0)
        super().process_event(event)  # type: ignore[arg-type]

    def send_data(self) -> None:
        super().send_data()
        self.check_backlog()

    # -- called by the server -------------------------------------------------------

    @property
    def reading(self) -> bool:
        """False while Tally has stopped reading this peer (it is sending faster than it may)."""
        return not self._paused_for

    def charge(self, cost: float) -> None:
        """Spend ``cost`` of this connection's and its address's budgets; stop reading while in debt."""
        wait = max(self.budget.charge(cost), self.gate[self.host].frames.charge(cost))
        if wait > 0 and "budget" not in self._paused_for:
            self._pause("budget")
            self.loop.call_later(wait, self._resume, "budget")

    async def spend(self, cost: float = 1.0) -> None:
        """Pay ``cost`` for the next message, waiting while this connection (or its address) is in debt.

        The session calls this before serving each message. Stopping reading
        alone would not pace: one read from the socket can hold hundreds of
        frames, all parsed at once. Waiting here leaves the rest queued, and past
        websockets' queue limit it stops reading the socket too.
        """
        address = self.gate[self.host].frames
        wait = max(self.budget.charge(cost), address.charge(cost))
        # In steps, so that a connection closing meanwhile is not held open by its own debt.
        while wait > 0 and self.protocol.state is State.OPEN:
            await asyncio.sleep(min(wait, 0.25))
            wait = max(self.budget.debt(), address.debt())

    def check_backlog(self, extra: int = 0) -> bool:
        """Drop the connection if its unsent data passes the bound (plus ``extra``); True if it did."""
        if self.transport.is_closing():
            return True
        unsent = self.transport.get_write_buffer_size()
        if unsent <= self.limits.max_write_buffer + extra:
            return False
        self.abort(f"not reading ({unsent:,} bytes unsent)")
        return True

    def close_flooder(self, reason: str) -> None:
        """Close with 1008 and ``reason``, reading nothing more from it (logged once, as it is dropped).

        The close frame goes out behind what is already queued; a peer that does not read it
        (or answer it) within the close timeout is dropped.
        """
        self.closing_reason = reason
        self.protocol.fail(CloseCode.POLICY_VIOLATION, reason)
        self.send_data()
        self.loop.call_later(self.close_timeout or 0.0, self.transport.abort)

    def abort(self, reason: str) -> None:
        """Drop the connection at once: a close frame would wait behind whatever is stuck."""
        if not self.transport.is_closing():
            self.closing_reason = reason
            self.transport.abort()

    def ping_now(self) -> None:
        """Send a ping without waiting for the backlog to drain; any answer proves the peer alive."""
        self.pinged_at = self.loop.time()
        self.protocol.send_ping(os.urandom(4))
        self.send_data()

    # -- reading on and off -------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if not self._paused_for and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused_for.add(reason)

    def _resume(self, reason: str) -> None:
        self._paused_for.discard(reason)
        if not self._paused_for and not self.transport.is_closing():
            self.transport.resume_reading()
            # Time spent unread was our doing, not the peer's silence.
            self.last_received = self.loop.time()


def connection_class(gate: Gate, limits: Limits) -> type[TallyConnection]:
    """A :class:`TallyConnection` bound to one server's gate and limits (websockets' ``create_connection``)."""
    return type("BoundTallyConnection", (TallyConnection,), {"gate": gate, "limits": limits})


class Liveness:
    """One sweep a second over every open connection: ping the idle, drop the silent."""

    def __init__(self, *, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout

    def sweep(self, connections: Iterable[ServerConnection], now: float) -> None:
        for connection in connections:
            if not isinstance(connection, TallyConnection) or connection.protocol.state is not State.OPEN:
                continue
            if not connection.reading:
                continue  # it is sending faster than we read: alive
            silent = now - connection.last_received
            if silent > self.interval + self.timeout:
                connection.abort(f"no answer for {silent:.0f} s")
            elif silent > self.interval and connection.pinged_at < connection.last_received:
                connection.ping_now()

    async def run(self, connections: Callable[[], Iterable[ServerConnection]], gate: Gate) -> None:
        """Sweep until cancelled."""
        loop = asyncio.get_running_loop()
        step = min(1.0, self.interval / 2)
        while True:
            await asyncio.sleep(step)
            self.sweep(connections(), loop.time())
            gate.forget_idle()
