"""Limits on a real server: rates, floods, amounts, frame size, connection cap, compression."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.app import TallyServer
from server.limits import Limits
from server.protocol import Ack, Error, ErrorCode, Presence, Update
from tests.support.peers import Peer
from tests.support.servers import serving


async def test_adds_past_the_rate_are_refused_and_change_nothing() -> None:
    """Past the burst, adds get rate_limited with their op id and are not applied."""
    async with (
        serving(limits=Limits(rate=1, burst=5, flood_strikes=1000)) as tally,
        await Peer.join(tally.url, "alice") as alice,  # hello spent one token
    ):
        for n in range(8):
            await alice.send(type="add", op=str(n), amount=1)
        refused = [await alice.next_of(Error) for _ in range(4)]
        assert {e.code for e in refused} == {ErrorCode.RATE_LIMITED}
        assert [e.op for e in refused] == ["4", "5", "6", "7"]
        assert "at most 1 a second" in refused[0].message
        assert tally.ledger.seq == 4


async def test_a_connection_that_keeps_flooding_is_closed_with_1008() -> None:
    """Ignoring rate_limited for long closes the connection; others are unaffected."""
    async with (
        serving(limits=Limits(rate=1, burst=3, flood_strikes=5)) as tally,
        await Peer.join(tally.url, "alice") as alice,
        await Peer.join(tally.url, "flood") as flood,
    ):
        await alice.expect(Presence)
        with pytest.raises(ConnectionClosed) as closed:
            for n in range(200):
                await flood.send(type="add", op=str(n), amount=1)
            while True:
                await flood.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        left = await alice.next_of(Presence)
        assert (left.event, left.client.name) == ("left", "flood")
        await alice.send(type="add", op="a", amount=5)
        assert (await alice.next_of(Ack)).op == "a"


async def test_garbage_and_renames_spend_the_budget_too() -> None:
    """A flood of garbage or renames is a flood: renames cost more because everyone receives them."""
    async with (
        serving(limits=Limits(rate=0.001, burst=25, flood_strikes=1000)) as tally,
        await Peer.join(tally.url, "alice") as alice,
    ):
        codes = []
        for _ in range(2):
            await alice.send(type="rename", name="bob")
            codes.append((await alice.receive()).TYPE)
        await alice.send_raw("garbage")
        codes.append((await alice.expect(Error)).code)
        await alice.send_raw("garbage")
        codes.append((await alice.expect(Error)).code)
        # 25 tokens: hello 1 + two renames 2 x 10 + two garbage frames 2 = 23; a third rename needs 10.
        assert codes == ["presence", "presence", ErrorCode.BAD_MESSAGE, ErrorCode.BAD_MESSAGE]
        await alice.send(type="rename", name="carol")
        assert (await alice.expect(Error)).code == ErrorCode.RATE_LIMITED


async def test_the_legacy_path_is_rate_limited_too() -> None:
    """Bare numbers past the rate get a one-line rate_limited error and are not added."""
    async with serving(limits=Limits(rate=0.001, burst=2, flood_strikes=1000)) as tally, connect(tally.url) as legacy:
        replies = []
        for _ in range(3):
            await legacy.send("1")
            replies.append(str(await legacy.recv()))
        assert replies[:2] == ["Server records total=1", "Server records total=2"]
        assert replies[2].startswith("error: rate_limited: ")
        assert tally.ledger.total == 2


async def test_handshakes_past_the_connection_limit_get_503() -> None:
    """The server holds at most max_connections; the next is refused before any frame."""
    async with serving(limits=Limits(max_connections=2)) as tally:
        async with await Peer.join(tally.url, "a"), await Peer.join(tally.url, "b"):
            with pytest.raises(InvalidStatus) as refused:
                await Peer.connect(tally.url)
            assert refused.value.response.status_code == 503
        async with await Peer.join(tally.url, "c") as c:  # room again once they left
            assert c.welcome is not None


async def test_permessage_deflate_is_off_by_default() -> None:
    """A client offering compression gets none."""
    async with serving() as tally, connect(tally.url, subprotocols=["tally.v1"], compression="deflate") as client:  # type: ignore[list-item]
        assert client.response is not None
        assert "Sec-WebSocket-Extensions" not in client.response.headers


async def test_adds_beyond_the_amount_bound_are_refused() -> None:
    """The bound is configurable and applies to both signs."""
    async with serving(limits=Limits(max_amount=100)) as tally, await Peer.join(tally.url, "alice") as alice:
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
