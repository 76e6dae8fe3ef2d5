"""A real server on port 0 and several real websockets clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tally.server.app import TallyServer
from tally.server.limits import Limits
from tally.server.protocol import INT64_MAX, Ack, Error, ErrorCode, Presence, Update, Welcome, decode_server_frame
from tally.server.session import LEGACY_NAME
from tally.server.state import seal
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving

# The blog post's client, copied verbatim (see tests/fixtures/README.md).
BLOG_CLIENT = Path(__file__).parents[1] / "fixtures" / "blog_client.py"


async def test_welcome_carries_a_full_snapshot(server: TallyServer) -> None:
    """A new client learns its id, the total, the seq, who is here and the recent history."""
    async with await Peer.join(server.url, "alice") as alice:
        await alice.send(type="add", op="1", amount=5)
        await alice.next_of(Ack)
        async with await Peer.join(server.url, "bob") as bob:
            welcome = bob.welcome
            assert welcome is not None
            assert (welcome.total, welcome.seq) == (5, 1)
            assert {c.name for c in welcome.clients} == {"alice", "bob"}
            assert [c.added for c in welcome.clients if c.name == "alice"] == [5]
            assert [(p.seq, p.total) for p in welcome.history] == [(1, 5)]
            assert welcome.you != alice.id


async def test_every_add_is_broadcast_to_every_client(server: TallyServer) -> None:
    """Three clients see the same updates in the same order; the adder also gets an ack."""
    peers = [await Peer.join(server.url, name) for name in ("a", "b", "c")]
    for peer in peers[:2]:
        await peer.next_of(Presence)  # c joined
    await peers[0].send(type="add", op="x", amount=3)
    await peers[1].send(type="add", op="y", amount=-10)
    for peer in peers:
        updates = [await peer.next_of(Update), await peer.next_of(Update)]
        assert sorted((u.seq, u.total) for u in updates) == [(1, updates[0].total), (2, -7)]
        assert {(u.name, u.amount, u.op) for u in updates} == {("a", 3, "x"), ("b", -10, "y")}
    ack = await peers[0].next_of(Ack)
    assert ack.op == "x"
    for peer in peers:
        await peer.close()


async def test_presence_join_rename_leave(server: TallyServer) -> None:
    """Joins, renames and leaves go to everyone as single events."""
    async with await Peer.join(server.url, "alice") as alice:
        bob = await Peer.join(server.url, "bob")
        joined = await alice.expect(Presence)
        assert (joined.event, joined.client.name, joined.client.id) == ("joined", "bob", bob.id)
        assert joined.client.address is None, "addresses are the operator's, not everyone's"
        assert alice.online is not None and alice.online.count == 2
        await bob.send(type="rename", name="  Robert ")
        for peer in (alice, bob):
            renamed = await peer.expect(Presence)
            assert (renamed.event, renamed.client.name) == ("renamed", "Robert")
        await bob.close()
        left = await alice.expect(Presence)
        assert (left.event, left.client.id, left.client.name) == ("left", bob.id, "Robert")


async def test_added_amounts_are_tracked_per_client(server: TallyServer) -> None:
    """The clients list says how much each one has added."""
    async with await Peer.join(server.url, "alice") as alice:
        for op, amount in (("1", 4), ("2", -1)):
            await alice.send(type="add", op=op, amount=amount)
            await alice.next_of(Ack)
        async with await Peer.join(server.url, "bob") as bob:
            assert bob.welcome is not None
            assert {c.name: c.added for c in bob.welcome.clients} == {"alice": 3, "bob": 0}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "add", "op": "1", "amount": True}, ErrorCode.INVALID_AMOUNT),
        ({"type": "add", "op": "1", "amount": 1.0}, ErrorCode.INVALID_AMOUNT),
        ({"type": "add", "op": "1", "amount": "3"}, ErrorCode.INVALID_AMOUNT),
        ({"type": "add", "op": "1", "amount": 2**64}, ErrorCode.INVALID_AMOUNT),
        ({"type": "add", "op": "1", "amount": 10**12 + 1}, ErrorCode.INVALID_AMOUNT),
        ({"type": "add", "op": "1", "amount": -(10**12) - 1}, ErrorCode.INVALID_AMOUNT),
        ({"type": "fly"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "rename", "name": "\x1b[2J"}, ErrorCode.INVALID_NAME),
        ({"type": "rename", "name": ""}, ErrorCode.INVALID_NAME),
        ({"type": "hello", "name": "again", "session": "s"}, ErrorCode.BAD_MESSAGE),
    ],
    ids=lambda v: json.dumps(v)[:50] if isinstance(v, dict) else v,
)
async def test_bad_messages_get_a_typed_error_and_change_nothing(
    server: TallyServer, message: dict[str, object], code: str
) -> None:
    """The sender gets an error; the total and everyone else are untouched; the connection stays up."""
    async with await Peer.join(server.url, "alice") as alice, await Peer.join(server.url, "bob") as bob:
        await alice.expect(Presence)  # bob joined
        await alice.send(type="add", op="0", amount=1)
        await alice.next_of(Ack)
        await bob.next_of(Update)
        await bob.send(**message)
        error = await bob.expect(Error)
        assert error.code == code
        assert (server.ledger.total, server.ledger.seq) == (1, 1)
        await bob.send(type="add", op="ok", amount=2)
        assert (await bob.expect(Update)).total == 3
        # Alice's very next message is that update: the bad message sent her nothing.
        assert (await alice.expect(Update)).total == 3


@pytest.mark.parametrize("frame", [b"\x00\xff", "{", "[" * 3000, '{"type":"add","op":"1","amount":NaN}'])
async def test_garbage_frames_do_not_break_the_connection(server: TallyServer, frame: str | bytes) -> None:
    """Binary frames, broken and deeply nested JSON get bad_message; the connection keeps working."""
    async with await Peer.join(server.url, "alice") as alice:
        await alice.send_raw(frame)
        assert (await alice.expect(Error)).code == ErrorCode.BAD_MESSAGE
        await alice.send(type="add", op="1", amount=1)
        assert (await alice.expect(Update)).total == 1


async def test_messages_before_hello_are_refused(server: TallyServer) -> None:
    """Adds before hello get hello_required (with their op id) and are not applied."""
    async with await Peer.connect(server.url) as peer:
        await peer.send(type="add", op="early", amount=5)
        error = await peer.expect(Error)
        assert (error.code, error.op) == (ErrorCode.HELLO_REQUIRED, "early")
        await peer.hello("\u202eevil", "s" * 16)
        assert (await peer.expect(Error)).code == ErrorCode.INVALID_NAME
        await peer.hello("late", "s" * 16)
        welcome = await peer.expect(Welcome)
        assert welcome.total == 0


async def test_a_resent_op_gets_the_original_ack(server: TallyServer) -> None:
    """A duplicate op id, even on a new connection of the same session, is not applied again."""
    async with await Peer.join(server.url, "alice", session="s-1") as alice:
        await alice.send(type="add", op="7", amount=5)
        first = await alice.next_of(Ack)
    async with await Peer.join(server.url, "alice", session="s-1") as again:
        await again.send(type="add", op="7", amount=5)
        assert await again.expect(Ack) == first
        # A rename comes back to its sender: if anything else had been sent, it would come first.
        await again.send(type="rename", name="alice again")
        assert (await again.expect(Presence)).client.name == "alice again"
    assert server.ledger.total == 5


async def test_a_resent_op_is_recognised_after_a_restart(db_path: Path) -> None:
    """Op ids live in the SQLite store, so dedupe holds across a server restart."""
    async with serving(db_path) as first, await Peer.join(first.url, "alice", session="s-1") as alice:
        await alice.send(type="add", op="7", amount=5)
        ack = await alice.next_of(Ack)
    async with serving(db_path) as second:
        async with await Peer.join(second.url, "alice", session="s-1") as alice:
            assert alice.welcome is not None and alice.welcome.total == 5
            await alice.send(type="add", op="7", amount=5)
            assert await alice.expect(Ack) == ack
            await alice.send(type="add", op="8", amount=1)
            assert (await alice.expect(Update)).seq == 2
        assert second.ledger.total == 6


async def test_the_original_blog_client_still_works(server: TallyServer) -> None:
    """Bare integers without a subprotocol are added, broadcast, and answered in the blog's words."""
    async with await Peer.join(server.url, "watcher") as watcher:
        async with connect(server.url) as legacy:
            assert legacy.subprotocol is None
            await legacy.send("5")
            assert await legacy.recv() == "Server records total=5"
            # Announced only once it has added something: a connection that comes and goes costs nobody.
            joined = await watcher.expect(Presence)
            assert joined.client.name == LEGACY_NAME
            update = await watcher.expect(Update)
            assert (update.total, update.amount, update.name, update.op) == (5, 5, LEGACY_NAME, None)
            await legacy.send(" -2\n")
            assert await legacy.recv() == "Server records total=3"
            for bad in ("abc", "1.5", "", "5 5", "1" * 30, b"5", "0", "-0"):
                await legacy.send(bad)
                reply = await legacy.recv()
                assert isinstance(reply, str) and reply.startswith("error: invalid_amount: ") and "\n" not in reply
            await legacy.send(str(INT64_MAX))
            assert str(await legacy.recv()).startswith("error: invalid_amount: ")
            await legacy.send("+4")
            assert await legacy.recv() == "Server records total=7"
        await watcher.next_of(Presence)  # left
    assert server.ledger.total == 7


async def test_the_blog_client_script_runs_unchanged(server: TallyServer, tmp_path: Path) -> None:
    """The blog post's client script, run as a program, gets the total back."""
    client = BLOG_CLIENT.read_text(encoding="utf-8")
    assert client.count("ws://localhost:8765") == 1
    script = tmp_path / "client.py"
    script.write_text(client.replace("ws://localhost:8765", server.url), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-W", "ignore", str(script),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(b"40\n2\n"), 20)
    assert "Server records total=40" in stdout.decode(), stderr.decode()[-2000:]
    assert "Server records total=40" in stdout.decode()
    assert "Server records total=42" in stdout.decode()
    assert server.ledger.total == 42


async def test_shutdown_closes_clients_with_going_away(db_path: Path) -> None:
    """Stopping the server closes every connection with 1001 so clients know to reconnect."""
    async with serving(db_path) as tally:
        peer = await Peer.join(tally.url, "alice")
    with pytest.raises(ConnectionClosed) as closed:
        await peer.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_oversized_frames_close_the_connection_with_1009(server: TallyServer) -> None:
    """A frame past the size limit closes that connection only."""
    async with await Peer.join(server.url, "alice") as alice, await Peer.join(server.url, "bob") as bob:
        await bob.send_raw("x" * 10_000)
        with pytest.raises(ConnectionClosed) as closed:
            await bob.receive()
        assert closed.value.sent is not None and closed.value.sent.code == 1009
        assert (await alice.expect(Presence)).event == "joined"
        assert (await alice.expect(Presence)).event == "left"
        await alice.send(type="add", op="1", amount=1)
        assert (await alice.expect(Update)).total == 1


async def test_generic_clients_choose_the_protocol_by_path(server: TallyServer) -> None:
    """A client that cannot set a subprotocol speaks tally.v1 on /tally.v1 (as docs/protocol.md shows)."""
    async with connect(f"{server.url}/tally.v1") as generic:
        assert generic.subprotocol is None
        await generic.send('{"type":"hello","name":"curl","session":"s"}')
        assert json.loads(await generic.recv())["type"] == "welcome"
        await generic.send('{"type":"add","op":"1","amount":2}')
        assert json.loads(await generic.recv())["type"] == "update"


async def test_a_silently_dead_peer_leaves_within_the_keepalive_bound() -> None:
    """A peer that stops answering pings is dropped within interval + timeout + close timeout."""
    async with serving(keepalive=0.3) as tally, await Peer.join(tally.url, "alice") as alice:
        bob = await Peer.join(tally.url, "bob")
        await alice.expect(Presence)  # bob joined
        bob.connection.transport.pause_reading()  # as if bob's machine froze: no pongs
        left = await alice.next_of(Presence, timeout=3)
        assert (left.event, left.client.name) == ("left", "bob")
        bob.connection.transport.abort()


async def test_overflow_is_refused_on_both_paths_and_changes_nothing() -> None:
    """With the amount bound at the full 64-bit range, an add past it gets overflow."""
    async with (
        serving(limits=Limits(max_amount=INT64_MAX)) as tally,
        await Peer.join(tally.url, "alice") as alice,
        connect(tally.url) as legacy,
    ):
        await alice.send(type="add", op="1", amount=INT64_MAX)
        assert (await alice.next_of(Ack)).seq == 1
        await alice.send(type="add", op="2", amount=1)
        error = await alice.next_of(Error)
        assert (error.code, error.op) == (ErrorCode.OVERFLOW, "2")
        await legacy.send("1")
        assert str(await legacy.recv()).startswith("error: overflow: ")
        assert (tally.ledger.total, tally.ledger.seq) == (INT64_MAX, 1)
        await alice.send(type="add", op="3", amount=-1)
        assert (await alice.next_of(Update)).total == INT64_MAX - 1


@contextlib.asynccontextmanager
async def burst(adds: int) -> AsyncIterator[tuple[TallyServer, Peer, Peer]]:
    """A server where alice has just sent ``adds`` adds as fast as she can, and bob watches."""
    async with (
        serving(limits=UNLIMITED_RATE) as tally,
        await Peer.join(tally.url, "alice") as alice,
        await Peer.join(tally.url, "bob") as bob,
    ):
        await alice.next_of(Presence)
        for n in range(adds):
            await alice.send(type="add", op=str(n), amount=1)
        yield tally, alice, bob


async def test_a_burst_of_updates_arrives_batched_complete_and_in_order() -> None:
    """Adds committed together reach every client in a few frames, every update once, in seq order."""
    async with burst(500) as (_, alice, bob):
        frames, seqs = 0, list[int]()
        while len(seqs) < 500:
            frame = await asyncio.wait_for(bob.connection.recv(), 5)
            frames += 1
            seqs += [m.seq for m in decode_server_frame(frame) if isinstance(m, Update)]
        assert seqs == list(range(1, 501))
        assert frames < 100, frames  # batched: far fewer frames than updates
        acks = [await alice.next_of(Ack) for _ in range(500)]
        assert [a.op for a in acks] == [str(n) for n in range(500)]


async def test_of_the_updates_committed_together_the_last_is_sealed_and_a_resume_from_it_is_accepted() -> None:
    """Updates sent together carry one seal, on the last of them; every seal sent checks out with the ledger's key."""
    async with burst(300) as (tally, _, bob):
        updates = [await bob.next_of(Update) for _ in range(300)]
        welcome = bob.welcome
        assert welcome is not None
        sealed = [u for u in updates if u.seal]
        assert updates[-1].seal, "the last update sent is sealed"
        assert 0 < len(sealed) < len(updates), "committed together: fewer seals than updates"
        key = tally.view.key
        assert all(u.seal == seal(key, welcome.ledger, welcome.epoch, u.seq, u.total, u.fingerprint) for u in sealed)
        last = sealed[-1]
        resume = {"ledger": welcome.ledger, "epoch": welcome.epoch, "seq": last.seq, "total": last.total,
                  "fingerprint": last.fingerprint, "seal": last.seal}  # fmt: skip
        async with await Peer.connect(tally.url) as again:
            await again.hello("bob", "secret-of-bob-again", resume=resume)
            welcomed = await again.expect(Welcome)
            assert welcomed.missed == () and welcomed.seq == 300
            assert welcomed.store is not None and welcomed.store.state == "available"


async def test_since_is_when_the_hello_says_the_person_came_within_the_retention_and_never_later_than_now(
    server: TallyServer,
) -> None:
    """A reconnecting dashboard says when it first came: listed as such; a time older than the retention window is
    held at its edge, one in the future at now, and a hello without it is now."""
    retention = server.handler.room.limits.retention
    async with await Peer.connect(server.url) as alice:
        now = time.time()
        await alice.hello("alice", "alice-secret-0001", since=now - 600)
        welcome = await alice.expect(Welcome)
        (me,) = [client for client in welcome.clients if client.id == welcome.you]
        assert me.since == now - 600
        for said, low, high in ((now - 10 * retention, -retention - 5, -retention + 5), (now + 3600, -5, 1)):
            async with await Peer.connect(server.url) as other:
                await other.hello("bob", "bob-secret-00001", since=said)
                other_welcome = await other.expect(Welcome)
                (them,) = [c for c in other_welcome.clients if c.id == other_welcome.you]
                assert low <= them.since - time.time() <= high, (said, them.since)
    async with await Peer.connect(server.url) as carol:
        await carol.hello("carol", "carol-secret-001", since="yesterday")
        refused = await carol.expect(Error)
        assert refused.code == ErrorCode.BAD_MESSAGE and "since" in refused.message
