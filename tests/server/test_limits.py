"""Limits on a real server: pacing by backpressure, per-address shares, the hello deadline, sizes, caps.

A client ahead of its budget is not refused: the server stops reading it until
the budget refills, so a well-behaved client (a dashboard resending a queue)
is slowed and every add counts; a flooder only slows itself.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tally.server.app import TallyServer
from tally.server.limits import Limits
from tally.server.protocol import Ack, Error, ErrorCode, Presence, Update
from tests.support.addresses import peer_from, server_side
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving
from tests.support.waiting import until

# Generous per address, so that only the limit under test binds.
OPEN = dataclasses.replace(UNLIMITED_RATE, rate=50.0, burst=100)


async def acks(peer: Peer, count: int, timeout: float = 20.0) -> list[Ack | Error]:
    """The next ``count`` answers to adds (acks or errors), skipping updates and presence."""
    answers: list[Ack | Error] = []
    async with asyncio.timeout(timeout):
        while len(answers) < count:
            message = await peer.receive(timeout)
            if isinstance(message, Ack | Error):
                answers.append(message)
    return answers


async def test_adds_past_the_rate_are_paced_not_refused() -> None:
    """Past the burst the server stops reading the connection for a while; every add is still applied, once."""
    async with (
        serving(limits=dataclasses.replace(OPEN, rate=40, burst=5)) as tally,
        await Peer.join(tally.url, "alice") as alice,
    ):
        connection = server_side(tally, alice)
        for n in range(30):
            await alice.send(type="add", op=str(n), amount=1)
        await until(lambda: not connection.reading, what="the server to stop reading the sender")
        answers = await acks(alice, 30)
        assert all(isinstance(a, Ack) for a in answers), answers
        assert sorted(int(a.op or "") for a in answers) == list(range(30))
        assert (tally.ledger.total, tally.ledger.seq) == (30, 30)


async def test_a_flood_on_one_connection_does_not_hold_up_another() -> None:
    """While a flooder waits on its budget, another client's add is applied straight away."""
    async with (
        serving(limits=dataclasses.replace(OPEN, rate=20, burst=20)) as tally,
        await Peer.join(tally.url, "alice") as alice,
        await Peer.join(tally.url, "flood") as flood,
    ):
        for n in range(200):
            await flood.send(type="add", op=str(n), amount=1)
        await until(lambda: tally.ledger.seq >= 20, what="the flooder's burst")
        await alice.send(type="add", op="mine", amount=1000)
        (answer,) = await acks(alice, 1, timeout=5)
        assert isinstance(answer, Ack) and answer.op == "mine"
        assert tally.ledger.seq < 100, "alice was not queued behind the flood"
        flood.connection.transport.abort()  # its close frame would wait behind the adds it still owes


async def test_one_address_shares_one_budget_and_others_are_not_slowed() -> None:
    """Connections from one address share its budget; a client from another address goes on at once."""
    limits = dataclasses.replace(OPEN, rate=1e6, burst=1_000_000, address_rate=10, address_burst=10)
    async with serving(limits=limits) as tally:
        first = await peer_from(tally, "127.0.0.1", "first")
        second = await peer_from(tally, "127.0.0.1", "second")
        other = await peer_from(tally, "127.0.0.2", "other")
        for n in range(50):
            await first.send(type="add", op=str(n), amount=1)
        await until(lambda: tally.ledger.seq >= 5, what="the address's burst")
        await second.send(type="add", op="s", amount=1)
        await other.send(type="add", op="o", amount=1)
        (answer,) = await acks(other, 1, timeout=5)
        assert isinstance(answer, Ack)
        assert tally.ledger.seq < 40
        assert "s" not in {r.op for r in tally.view.recent}, "the second connection waits on its address's budget"
        first.connection.transport.abort()  # it still owes its address a few seconds
        for peer in (second, other):
            await peer.close()


async def test_renames_and_requests_cost_more_of_the_budget() -> None:
    """A rename reaches everyone, so it costs ten frames' worth; garbage costs like anything else."""
    async with (
        serving(limits=dataclasses.replace(OPEN, rate=0.001, burst=40)) as tally,
        await Peer.join(tally.url, "alice") as alice,
    ):
        connection = server_side(tally, alice)
        spent = connection.budget.capacity - connection.budget.tokens  # the hello (and pings, if any)
        await alice.send(type="rename", name="bob")
        await alice.next_of(Presence)
        await alice.send_raw("garbage")
        assert (await alice.expect(Error)).code == ErrorCode.BAD_MESSAGE
        assert connection.budget.capacity - connection.budget.tokens == pytest.approx(spent + 11, abs=0.1)


async def test_a_bare_number_script_is_paced_not_closed() -> None:
    """A script that waits for each reply is slowed past the rate, never refused or closed as a flooder."""
    async with serving(limits=dataclasses.replace(OPEN, rate=100, burst=20)) as tally, connect(tally.url) as legacy:
        replies = []
        for _ in range(150):
            await legacy.send("1")
            replies.append(str(await legacy.recv()))
        assert replies == [f"Server records total={n}" for n in range(1, 151)]


async def test_a_client_that_never_says_hello_is_closed_at_the_deadline() -> None:
    """A dashboard must say hello, and a bare-number client send its first number, within hello_timeout."""
    async with serving(limits=dataclasses.replace(OPEN, hello_timeout=0.3)) as tally:
        silent = await Peer.connect(tally.url)
        with pytest.raises(ConnectionClosed) as closed:
            await silent.receive(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "no hello" in closed.value.rcvd.reason
        async with connect(tally.url) as legacy:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(legacy.recv(), 5)
        await until(lambda: tally.handler.open_connections == 0, what="both gone")


async def test_connections_from_one_address_are_capped() -> None:
    """Past its share an address gets HTTP 429; another address still gets in."""
    async with serving(limits=dataclasses.replace(OPEN, max_connections_per_address=3)) as tally:
        crowd = [await peer_from(tally, "127.0.0.2", f"p{n}") for n in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await peer_from(tally, "127.0.0.2", "one too many")
        assert refused.value.response.status_code == 429
        async with await Peer.join(tally.url, "alice") as alice:
            assert alice.welcome is not None
        for peer in crowd:
            await peer.close()


async def test_new_connections_from_one_address_are_paced() -> None:
    """Past connect_burst new connections from one address are refused with 429 and Retry-After."""
    limits = dataclasses.replace(OPEN, connect_rate=0.001, connect_burst=3)
    async with serving(limits=limits) as tally:
        first = [await peer_from(tally, "127.0.0.2") for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await peer_from(tally, "127.0.0.2")
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "1"
        async with await Peer.join(tally.url, "alice") as alice:
            assert alice.welcome is not None
        for peer in first:
            await peer.close()


async def test_handshakes_past_the_connection_limit_get_503() -> None:
    """The server holds at most max_connections; the next is refused before any frame."""
    async with serving(limits=dataclasses.replace(OPEN, max_connections=2)) as tally:
        async with await Peer.join(tally.url, "a"), await Peer.join(tally.url, "b"):
            with pytest.raises(InvalidStatus) as refused:
                await Peer.connect(tally.url)
            assert refused.value.response.status_code == 503
        await until(lambda: tally.handler.open_connections == 0, what="both gone")
        async with await Peer.join(tally.url, "c") as c:  # room again once they left
            assert c.welcome is not None


async def test_permessage_deflate_is_off_by_default() -> None:
    """A client offering compression gets none."""
    async with serving() as tally, connect(tally.url, subprotocols=["tally.v2"], compression="deflate") as client:  # type: ignore[list-item]
        assert client.response is not None
        assert "Sec-WebSocket-Extensions" not in client.response.headers


async def test_adds_beyond_the_amount_bound_are_refused() -> None:
    """The bound is configurable, applies to both signs, and is sent in the welcome."""
    async with serving(limits=Limits(max_amount=100)) as tally, await Peer.join(tally.url, "alice") as alice:
        assert alice.welcome is not None and alice.welcome.limits is not None
        assert alice.welcome.limits.max_amount == 100
        for op, amount in (("1", 101), ("2", -101)):
            await alice.send(type="add", op=op, amount=amount)
            error = await alice.expect(Error)
            assert (error.code, error.op) == (ErrorCode.INVALID_AMOUNT, op) and "100" in error.message
        await alice.send(type="add", op="3", amount=-100)
        assert (await alice.expect(Update)).total == -100


async def test_a_message_of_exactly_the_size_limit_is_served(server: TallyServer) -> None:
    """A valid add padded to exactly max_message_bytes is read and applied."""
    frame = '{"type":"add","op":"1","amount":1}'
    frame += " " * (server.config.limits.max_message_bytes - len(frame))
    async with await Peer.join(server.url, "alice") as alice:
        await alice.send_raw(frame)
        assert (await alice.expect(Update)).total == 1
        assert (await alice.expect(Ack)).op == "1"


async def test_one_byte_past_the_size_limit_closes_that_connection_with_1009(server: TallyServer) -> None:
    """The same add one byte longer closes the sender's connection with 1009; nothing is added, others go on."""
    frame = '{"type":"add","op":"1","amount":1}'
    frame += " " * (server.config.limits.max_message_bytes + 1 - len(frame))
    async with await Peer.join(server.url, "alice") as alice, await Peer.join(server.url, "bob") as bob:
        assert (await alice.expect(Presence)).event == "joined"
        await bob.send_raw(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await bob.receive()
        assert closed.value.sent is not None and closed.value.sent.code == 1009
        assert (await alice.expect(Presence)).event == "left"
        assert server.ledger.seq == 0
        await alice.send(type="add", op="2", amount=2)
        assert (await alice.expect(Update)).total == 2
