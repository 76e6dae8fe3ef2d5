"""The attacks an afternoon found, each against a real server: none may cost anyone else an add, or the server.

Each test here failed against the server before these defences; docs/guarantees.md
(Guarantees, Limits) says what they promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tally.server.app import TallyServer
from tally.server.connection import TallyConnection
from tally.server.limits import Limits
from tally.server.protocol import INT64_MAX, Ack, Error, ErrorCode, Presence, Update, Welcome
from tests.support.addresses import bound_socket, peer_from
from tests.support.faultproxy import FaultProxy
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED, UNLIMITED_RATE, ServerProcess, serving
from tests.support.waiting import until


async def answer(peer: Peer, op: str) -> Ack | Error:
    """The answer to ``op``, skipping everything else."""
    while True:
        message = await peer.receive()
        if isinstance(message, Ack | Error) and message.op == op:
            return message


# -- acknowledged or typed adds lost ---------------------------------------------------


async def test_nobody_can_spend_your_op_ids_without_your_secret() -> None:
    """Another client sending your op ids (even with your name) adds its own updates; yours stay yours."""
    async with serving(limits=UNLIMITED_RATE) as server:
        alice = await Peer.join(server.url, "alice", "alice-secret-0001")
        for op in ("1", "2"):
            await alice.send(type="add", op=op, amount=10)
            assert isinstance(await answer(alice, op), Ack)
        mallory = await Peer.join(server.url, "alice", "mallory-secret-01")
        for n in range(3, 23):
            await mallory.send(type="add", op=str(n), amount=1)
        for n in range(3, 23):
            assert isinstance(await answer(mallory, str(n)), Ack)
        for op in ("3", "4", "5"):  # alice's next adds: new updates, never someone else's acks
            await alice.send(type="add", op=op, amount=100)
            ack = await answer(alice, op)
            assert isinstance(ack, Ack) and next(r for r in server.view.recent if r.seq == ack.seq).amount == 100
        assert server.ledger.total == 20 + 20 + 300
        await alice.send(type="add", op="1", amount=10)  # a resend of her own: the original ack
        assert await answer(alice, "1") == Ack(op="1", seq=1)
        for peer in (alice, mallory):
            await peer.close()


async def test_an_op_id_resent_with_another_amount_is_refused_as_a_conflict() -> None:
    """Two dashboards sharing a secret pick the same op id: the second is refused, never acknowledged."""
    async with serving() as server:
        first = await Peer.join(server.url, "alice", "shared-secret-0001")
        second = await Peer.join(server.url, "alice", "shared-secret-0001")
        await first.send(type="add", op="1", amount=5)
        assert isinstance(await answer(first, "1"), Ack)
        await second.send(type="add", op="1", amount=7)
        refusal = await answer(second, "1")
        assert isinstance(refusal, Error) and refusal.code == ErrorCode.CONFLICT
        assert server.ledger.total == 5
        for peer in (first, second):
            await peer.close()


# -- memory, CPU and file descriptors ----------------------------------------------------


async def ping_flood(limits: Limits, pings: int = 20_000) -> tuple[int, str, int]:
    """A client that sends large pings and never reads the pongs; returns (peak unsent bytes on the server,
    why the flooder was dropped or is being closed ("" if it was not), adds another client got answered meanwhile
    out of 20)."""
    async with serving(limits=limits) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link: the kernel holds little
        sock.connect(("127.0.0.1", server.port))
        flooder = await connect(server.url, sock=sock, subprotocols=["tally.v2"], ping_interval=None)  # type: ignore[list-item]
        flooder.transport.pause_reading()  # it never reads the pongs
        (server_end,) = server.server.connections
        assert isinstance(server_end, TallyConnection)
        server_end.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        alice = await Peer.join(server.url, "alice")
        peak = 0
        for n in range(pings):
            if flooder.transport.is_closing():
                break  # dropped
            flooder.protocol.send_ping(n.to_bytes(4, "big") * 31)  # 124 bytes, near the most a ping may carry
            flooder.send_data()
            if n % 500 == 0:
                await asyncio.sleep(0.001)
                peak = max(peak, server_end.transport.get_write_buffer_size())
        for n in range(20):
            await alice.send(type="add", op=str(n), amount=1)
        answered = 0
        for n in range(20):
            answered += isinstance(await answer(alice, str(n)), Ack)
        peak = max(peak, server_end.transport.get_write_buffer_size())
        dropped = server_end.closing_reason
        await alice.close()
        flooder.transport.abort()
        return peak, dropped, answered


async def test_a_ping_flood_is_stopped_and_cannot_grow_the_servers_memory() -> None:
    """Pings count against the budget: past it the flooder is closed and nothing more is read from it, so its unread
    pongs stay within what one read of the socket brought (asyncio reads at most 256 KiB), and another client's adds
    are answered meanwhile."""
    peak, dropped, answered = await ping_flood(dataclasses.replace(UNLIMITED_RATE, rate=50, burst=100))
    assert (peak < 256 * 1024, dropped.startswith("control frames"), answered) == (True, True, 20), (peak, dropped)


async def test_unread_pongs_count_against_the_write_bound() -> None:
    """Even unpaced, a connection whose pongs pile up unread is dropped at the write bound, pongs included."""
    limits = dataclasses.replace(UNLIMITED_RATE, max_write_buffer=64 * 1024)
    peak, dropped, answered = await ping_flood(limits)
    assert dropped.startswith("not reading") and answered == 20
    assert peak <= 64 * 1024 + 128, peak


async def test_without_either_defence_a_ping_flood_grows_the_servers_memory() -> None:
    """The control: with no pacing and no bound, the same flood piles up megabytes the peer never reads."""
    peak, dropped, _ = await ping_flood(dataclasses.replace(UNLIMITED_RATE, max_write_buffer=2**40))
    assert not dropped and peak > 1_000_000, peak


@contextlib.asynccontextmanager
async def flood_beside_a_colleague(
    limits: Limits, pings: int = 20_000
) -> AsyncIterator[tuple[TallyServer, Peer, ClientConnection]]:
    """A colleague joined from 127.0.0.2, then a connection from the same address that sends ``pings`` pings in one
    write (200 KB, parsed in a few reads) and reads what comes back."""
    async with serving(limits=limits) as server:
        colleague = await peer_from(server, "127.0.0.2", "colleague")
        flooder = await connect(server.url, sock=bound_socket(server, "127.0.0.2"), subprotocols=["tally.v2"],  # type: ignore[list-item]
                                ping_interval=None)  # fmt: skip
        for n in range(pings):
            flooder.protocol.send_ping(n.to_bytes(4, "big"))
        flooder.send_data()
        try:
            yield server, colleague, flooder
        finally:
            flooder.transport.abort()
            colleague.connection.transport.abort()


async def test_a_ping_flood_is_closed_and_never_charged_to_its_neighbours(caplog: pytest.LogCaptureFixture) -> None:
    """20,000 pings in one write, at the default limits: the flooder is closed with 1008 and a reason (logged once),
    what it owed past its burst lands on nobody, and a colleague behind the same address gets an add acked."""
    caplog.set_level("WARNING", logger="tally.server")
    async with flood_beside_a_colleague(Limits()) as (server, colleague, flooder):
        await asyncio.wait_for(flooder.wait_closed(), 10)
        assert (flooder.close_code, flooder.close_reason) == (1008, "control frames (pings) faster than 50 a second")
        # The address owes nothing: the colleague's next frame is read at once (it waited 115 s for an add).
        assert server.gate["127.0.0.2"].frames.debt() == 0
        await colleague.send(type="add", op="1", amount=1)
        assert await answer(colleague, "1") == Ack(op="1", seq=1)
        await until(lambda: server.handler.open_connections == 1, what="the flooder gone")
        drops = [r.getMessage() for r in caplog.records if "control frames" in r.getMessage()]
        assert len(drops) == 1 and drops[0].startswith("drop") and "127.0.0.2" in drops[0], drops


async def test_without_the_bound_a_ping_flood_lands_on_its_address() -> None:
    """The control: with a connection budget too large to run out, the same flood is charged to the address, which
    owes a minute and more: what the colleague above would have waited for."""
    async with flood_beside_a_colleague(Limits(burst=10**6)) as (server, _, flooder):
        await until(lambda: server.gate["127.0.0.2"].frames.debt() > 60, what="the address in debt")
        assert flooder.close_code is None


async def test_one_address_cannot_lock_everyone_out() -> None:
    """Hundreds of connections from one address that never say hello: refused past its share, closed at the
    hello deadline; a dashboard from elsewhere gets in all along."""
    limits = dataclasses.replace(Limits(), max_connections_per_address=50, hello_timeout=1.0, connect_burst=1000)
    async with serving(limits=limits) as server:
        silent = await asyncio.gather(*(peer_from(server, "127.0.0.2") for _ in range(50)), return_exceptions=True)
        refused = await asyncio.gather(*(peer_from(server, "127.0.0.2") for _ in range(100)), return_exceptions=True)
        assert all(isinstance(peer, Peer) for peer in silent)
        # Past its share an address is told 429; far past it, it is dropped at accept without a word.
        assert not any(isinstance(peer, Peer) for peer in refused)
        statuses = [getattr(getattr(e, "response", None), "status_code", None) for e in refused]
        assert statuses.count(429) >= 10, statuses
        async with await Peer.join(server.url, "alice") as alice:
            assert alice.welcome is not None
        await until(lambda: server.handler.open_connections == 0, timeout=5, what="the silent ones closed")
        for peer in silent:
            assert isinstance(peer, Peer)
            peer.connection.transport.abort()


async def test_under_the_default_open_file_limit_the_server_stays_up_and_quiet(tmp_path: Path) -> None:
    """With 1,024 open files, a flood of sockets that never speak is turned away at accept (no EMFILE storm,
    no huge log), and once the flood's deadline passes a dashboard gets in."""
    with ServerProcess(tmp_path / "tally.db", *UNLIMITED, "--hello-timeout", "1", open_files=1024) as server:
        url = server.start()
        flood = []
        for _ in range(1500):
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind(("127.0.0.2", 0))
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", server.port))
            flood.append(sock)
        await asyncio.sleep(0)
        assert any("open-file limit is 1024" in line for line in server.log)

        async def joined() -> bool:
            try:
                async with await Peer.join(url, "alice") as alice:
                    return alice.welcome is not None
            except Exception:
                return False

        ok = False
        for _ in range(100):  # the flood's sockets are closed at the hello deadline (1 s)
            if await joined():
                ok = True
                break
            await asyncio.sleep(0.1)
        assert ok, "a dashboard could not get in"
        assert server.process is not None and server.process.poll() is None
        assert server.log_bytes < 200_000, f"{server.log_lines} log lines, {server.log_bytes} bytes"
        for sock in flood:
            sock.close()


# -- welcomes that stay bounded, and peers that vanish ----------------------------------


async def test_the_welcome_stays_bounded_in_a_large_room() -> None:
    """Past live_presence a v2 welcome lists nobody (pages are asked for); a v1 welcome lists at most 1,000."""
    limits = dataclasses.replace(UNLIMITED_RATE, live_presence=20)
    async with serving(limits=limits) as server:
        crowd = [await Peer.join(server.url, f"{n:03d}" + "x" * 29) for n in range(60)]
        late = await Peer.join(server.url, "late")
        assert late.welcome is not None and (late.welcome.live, late.welcome.clients) == (False, ())
        assert late.welcome.online == 61
        frame = await connect(server.url, subprotocols=["tally.v2"])  # type: ignore[list-item]
        await frame.send(json.dumps({"type": "hello", "name": "raw", "secret": "r" * 16}))
        assert len(await frame.recv()) < 16_384
        await frame.close()
        old = await Peer.join(server.url, "old", version=1)
        assert old.welcome is not None and len(old.welcome.clients) == 62
        for peer in (*crowd, late, old):
            await peer.close()


async def test_what_a_session_added_never_makes_a_welcome_unreadable() -> None:
    """A contribution past 64 bits (possible with a raised bound) is held at the edge, never sent out of range."""
    async with serving(limits=Limits(max_amount=INT64_MAX)) as server:
        alice = await Peer.join(server.url, "alice", "alice-secret-0001")
        bob = await Peer.join(server.url, "bob")
        await alice.send(type="add", op="1", amount=INT64_MAX)
        await answer(alice, "1")
        await bob.send(type="add", op="1", amount=-INT64_MAX)
        await answer(bob, "1")
        await alice.send(type="add", op="2", amount=5)
        await answer(alice, "2")
        again = await Peer.join(server.url, "alice", "alice-secret-0001")
        assert again.welcome is not None and again.welcome.added == INT64_MAX
        for peer in (alice, bob, again):
            await peer.close()


async def test_a_silently_dead_peer_under_traffic_leaves_within_the_bound() -> None:
    """A peer whose network vanished (no FIN, no RST) is dropped within ping interval + timeout, even while
    updates keep flowing to it and pile up unsent."""
    async with serving(limits=UNLIMITED_RATE, keepalive=0.5) as server:
        proxy = FaultProxy(server.port)
        port = await proxy.start()
        watcher = await Peer.join(server.url, "watcher")
        doomed = await Peer.join(f"ws://127.0.0.1:{port}", "doomed", ping_interval=None)
        await watcher.next_of(Presence)
        adder = await Peer.join(server.url, "adder")
        proxy.stall()  # its network is gone: nothing passes either way, nothing is closed
        loop = asyncio.get_running_loop()
        started = loop.time()
        n = 0
        while "doomed" in {c.name for c in server.roster}:
            n += 1
            await adder.send(type="add", op=str(n), amount=1)
            await asyncio.sleep(0.005)
            assert loop.time() - started < 5, "the dead peer was never dropped"
        assert loop.time() - started < 2.5
        doomed.connection.transport.abort()
        await proxy.close()
        for peer in (watcher, adder):
            await peer.close()


# -- abuse that costs everyone else -------------------------------------------------------


async def test_bare_number_clients_that_come_and_go_cost_the_others_nothing() -> None:
    """A connect and close of the blog client is not announced to anyone; only one that adds is."""
    async with serving(limits=UNLIMITED_RATE) as server, await Peer.join(server.url, "watcher") as watcher:
        for _ in range(30):
            async with connect(server.url):
                pass
        await watcher.send(type="add", op="barrier", amount=1)
        assert isinstance(await watcher.receive(), Update), "no presence came before the barrier"


async def test_wrong_tokens_are_throttled_per_address() -> None:
    """Past auth_failures wrong tokens an address is refused with 429 without its token being read."""
    limits = dataclasses.replace(UNLIMITED_RATE, auth_failures=5)
    async with serving(limits=limits, token="right") as server:
        statuses = []
        for _ in range(8):
            try:
                peer = await peer_from(server, "127.0.0.2", additional_headers={"Authorization": "Bearer wrong"})
                await peer.close()
            except Exception as exc:
                statuses.append(getattr(getattr(exc, "response", None), "status_code", None))
        assert statuses == [401] * 5 + [429] * 3
        with pytest.raises(Exception) as throttled:
            await peer_from(server, "127.0.0.2", "x", additional_headers={"Authorization": "Bearer right"})
        assert getattr(getattr(throttled.value, "response", None), "status_code", None) == 429
        async with await Peer.join(server.url, "alice", additional_headers={"Authorization": "Bearer right"}) as a:
            assert isinstance(a.welcome, Welcome)


async def test_addresses_are_shown_only_when_the_operator_asks() -> None:
    """By default nobody learns anyone's address; with show_addresses every dashboard sees them."""
    async with serving(show_addresses=True) as server, await Peer.join(server.url, "alice") as alice:
        assert alice.welcome is not None
        (me,) = alice.welcome.clients
        assert me.address is not None and me.address.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\u0430lice", "mix Latin, Cyrillic"),  # alice with a Cyrillic a
        ("\u3164", "contain something visible"),  # Hangul filler: draws as nothing
        ("\u2800\u2800", "contain something visible"),  # Braille blank
        ("a" + "\u0301" * 31, "stack more than"),
        ("\u5b57" * 32, "columns wide"),  # 32 wide CJK characters: 64 columns
    ],
)
async def test_names_that_pass_for_someone_elses_are_refused(name: str, why: str) -> None:
    """A hello with a lookalike, invisible, stacked or overlong name gets invalid_name, saying why."""
    async with serving() as server, await Peer.connect(server.url) as peer:
        await peer.send(type="hello", name=name, secret="lookalike-secret-1")
        refused = await peer.expect(Error)
        assert refused.code == ErrorCode.INVALID_NAME and why in refused.message
        assert len(server.roster) == 0


async def test_two_people_with_one_name_are_told_apart_by_their_tags() -> None:
    """A name is not an identity: two alices get different tags, and a fullwidth alice is the same alice."""
    async with serving() as server:
        first = await Peer.join(server.url, "alice", "first-alice-secret")
        second = await Peer.join(server.url, "\uff41\uff4c\uff49\uff43\uff45", "second-alice-secret")
        assert second.welcome is not None
        alices = [client for client in second.welcome.clients if client.name == "alice"]
        assert len(alices) == 2 and len({client.tag for client in alices}) == 2 and all(c.tag for c in alices)
        for peer in (first, second):
            await peer.close()
