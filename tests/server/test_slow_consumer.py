"""A client that stops reading must not grow the server's memory or slow anyone else down."""

from __future__ import annotations

import dataclasses
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tally.server.app import TallyServer
from tally.server.connection import TallyConnection
from tally.server.fanout import MAX_MESSAGES_PER_FRAME
from tally.server.protocol import SUBPROTOCOL, Update, Welcome
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving

UPDATES = 10_000
BOUND = 64 * 1024


async def run_with_a_stalled_reader(server: TallyServer) -> tuple[int, bool, list[list[int]]]:
    """Flood updates while one client never reads; return (peak unsent bytes, slow one dropped, fast seqs)."""
    fast = [await Peer.join(server.url, name) for name in ("fast-1", "fast-2")]
    # A small receive window, set before connecting as a slow link would have, then no reading at all:
    # the kernel's buffers fill quickly and the rest piles up in the server's process.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = Peer(await connect(server.url, sock=sock, subprotocols=[Subprotocol(SUBPROTOCOL)]))
    await slow.hello("slow", "the-slow-secret")
    await slow.expect(Welcome)
    local_port = sock.getsockname()[1]
    (server_side,) = [c for c in server.fanout.connections if c.remote_address[1] == local_port]
    assert isinstance(server_side, TallyConnection)
    # And a small send buffer on the server's side of it.
    server_side.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    slow.connection.transport.pause_reading()
    publisher = await Peer.join(server.url, "publisher")
    peak = 0
    flush = server.fanout.flush

    def measured_flush() -> None:
        # The backlog is largest right before a flush writes (or drops); measure it there.
        nonlocal peak
        peak = max([peak, *(c.transport.get_write_buffer_size() for c in server.fanout.connections)])
        flush()

    abort = server_side.abort

    def measured_abort(reason: str) -> None:
        # Within a flush, the backlog peaks when it crosses the bound and the client is dropped.
        nonlocal peak
        peak = max(peak, server_side.transport.get_write_buffer_size())
        abort(reason)

    server.fanout.flush = measured_flush  # type: ignore[method-assign]
    server_side.abort = measured_abort  # type: ignore[method-assign]
    for n in range(UPDATES):
        await publisher.send(type="add", op=str(n), amount=1)
    seen: list[list[int]] = []
    for peer in fast:
        seqs: list[int] = []
        while len(seqs) < UPDATES:
            message = await peer.receive(timeout=20)
            if isinstance(message, Update):
                seqs.append(message.seq)
        seen.append(seqs)
    dropped = "slow" not in {client.name for client in server.roster.clients()}
    for peer in (*fast, publisher):
        await peer.close()
    slow.connection.transport.abort()
    return peak, dropped, seen


async def test_a_slow_consumer_is_dropped_and_memory_stays_bounded() -> None:
    """Past the write-buffer bound the slow client is dropped; the others get every update in order."""
    async with serving(limits=dataclasses.replace(UNLIMITED_RATE, max_write_buffer=BOUND)) as server:
        peak, dropped, seen = await run_with_a_stalled_reader(server)
    print(f"\npeak unsent bytes for one stalled client: {peak:,} (bound {BOUND:,})")
    assert dropped
    assert peak <= BOUND + MAX_MESSAGES_PER_FRAME * 200  # the bound, plus at most the frame that crossed it
    for seqs in seen:
        assert seqs == sorted(seqs) and len(set(seqs)) == UPDATES  # every update, in order, no gaps


async def test_without_the_bound_the_backlog_grows_with_the_traffic() -> None:
    """The control: keepalive alone neither drops the stalled client nor bounds its backlog."""
    async with serving(limits=dataclasses.replace(UNLIMITED_RATE, max_write_buffer=2**40)) as server:
        peak, dropped, _ = await run_with_a_stalled_reader(server)
    print(f"\npeak unsent bytes with no bound: {peak:,}")
    assert not dropped
    assert peak > 4 * BOUND


@pytest.fixture(autouse=True)
def _quiet_joins(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="tally.server")
