"""The fan-out's order on real connections: what is published goes before direct answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from tally.server.app import TallyServer
from tally.server.protocol import Ack, Presence, ServerMessage, Update, Welcome
from tally.server.state import AddRequest, Outcome
from tally.server.store.memory import MemoryStore
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving


async def test_an_adders_update_comes_before_its_ack() -> None:
    """For each of a burst of adds, the adder receives the update before the ack; others get the updates."""
    async with (
        serving(limits=UNLIMITED_RATE) as server,
        await Peer.join(server.url, "alice") as alice,
        await Peer.join(server.url, "bob") as bob,
    ):
        assert (await alice.expect(Presence)).event == "joined"
        for n in range(200):
            await alice.send(type="add", op=str(n), amount=1)
        updated: set[str] = set()
        acked: list[str] = []
        while len(acked) < 200:
            message = await alice.receive()
            if isinstance(message, Update):
                assert message.op is not None
                updated.add(message.op)
            else:
                assert isinstance(message, Ack), message
                assert message.op in updated, f"ack {message.op} before its update"
                acked.append(message.op)
        assert acked == [str(n) for n in range(200)]
        assert [(await bob.expect(Update)).seq for _ in range(200)] == list(range(1, 201))


async def test_a_joiners_welcome_comes_before_the_answers_to_what_it_sent_next(server: TallyServer) -> None:
    """hello then add at once: welcome first, then the update unless the welcome covers it, then the ack."""
    async with await Peer.join(server.url, "watcher") as watcher, await Peer.connect(server.url) as joiner:
        await joiner.send_raw(json.dumps({"type": "hello", "name": "joiner", "secret": "the-joiners-secret"}))
        await joiner.send(type="add", op="1", amount=5)
        received: list[ServerMessage] = [await joiner.receive()]
        welcome = received[0]
        assert isinstance(welcome, Welcome), received
        if welcome.seq == 0:  # the add was stored after the welcome was built: its update follows
            received.append(await joiner.expect(Update))
        else:  # stored before: the welcome already counts it, and the update is not sent again
            assert (welcome.seq, welcome.total) == (1, 5)
        ack = await joiner.expect(Ack)
        assert (ack.op, ack.seq) == ("1", 1)
        assert (await watcher.expect(Presence)).client.name == "joiner"
        assert (await watcher.expect(Update)).seq == 1


class HeldStore(MemoryStore):
    """The in-memory store, holding every commit until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def apply(self, batch: Sequence[AddRequest], *, at: float) -> list[Outcome]:
        await self.release.wait()
        return await super().apply(batch, at=at)


async def test_an_add_stored_after_the_welcome_reaches_the_joiner_as_an_update_then_its_ack() -> None:
    """With the commit held until the joiner is welcomed: welcome (seq 0), then the update, then the ack."""
    store = HeldStore()
    async with serving(store=store) as server, await Peer.connect(server.url) as joiner:
        try:
            await joiner.send_raw(json.dumps({"type": "hello", "name": "joiner", "secret": "the-joiners-secret"}))
            await joiner.send(type="add", op="1", amount=5)
            welcome = await joiner.expect(Welcome)
            assert (welcome.seq, welcome.total) == (0, 0)
        finally:
            store.release.set()  # else the server could not store the add and stop
        update = await joiner.expect(Update)
        assert (update.op, update.seq, update.total) == ("1", 1, 5)
        assert (await joiner.expect(Ack)).op == "1"
