"""Kill -9 the real server process mid-stream: nothing acknowledged is lost or counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from server.protocol import Ack, Update
from tests.peers import UNLIMITED, Peer, ServerProcess


async def stream_until_killed(peer: Peer, ops: dict[str, int], acked: set[str], server: ServerProcess) -> None:
    """Send every op without waiting; SIGKILL the server once the first 2% are acknowledged."""

    async def read_acks() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await peer.receive(timeout=30)
                if isinstance(message, Ack):
                    acked.add(message.op)
                    if len(acked) == len(ops) // 50:
                        server.kill()

    reader = asyncio.create_task(read_acks())
    with contextlib.suppress(ConnectionClosed):
        for op, amount in ops.items():
            await peer.send(type="add", op=op, amount=amount)
    await asyncio.wait_for(reader, 30)


async def test_sigkill_mid_stream_then_resend(db_path: Path) -> None:
    """After kill -9 and restart, the stored total covers every ack; resending the rest applies each op once."""
    rng = random.Random(20261124)
    ops = {f"op-{n}": rng.randint(1, 1000) for n in range(10_000)}
    server = ServerProcess(db_path, *UNLIMITED)
    try:
        peer = await Peer.join(server.start(), "crash", session="crash-session")
        acked: set[str] = set()
        await stream_until_killed(peer, ops, acked, server)
        assert 0 < len(acked) < len(ops), "the kill must land mid-stream"

        # Restart on the same database: every acknowledged add is there.
        peer = await Peer.join(server.start(), "crash", session="crash-session")
        assert peer.welcome is not None
        stored_total, stored_seq = peer.welcome.total, peer.welcome.seq
        assert stored_total >= sum(ops[op] for op in acked)
        assert stored_seq >= len(acked)

        # Resend everything not acknowledged, with the same op ids: each lands once.
        for op in ops.keys() - acked:
            await peer.send(type="add", op=op, amount=ops[op])
        applied = 0
        while len(acked) < len(ops):
            message = await peer.receive(timeout=30)
            if isinstance(message, Ack):
                acked.add(message.op)
            elif isinstance(message, Update):
                applied += 1
        # Resends already stored before the kill were answered, not applied again.
        assert stored_seq + applied == len(ops)
        await peer.close()
        assert await asyncio.to_thread(server.terminate) == 0

        # A third start sees exactly one application of every op.
        peer = await Peer.join(server.start(), "check", session="check")
        assert peer.welcome is not None
        assert (peer.welcome.total, peer.welcome.seq) == (sum(ops.values()), len(ops))
        await peer.close()
    finally:
        server.stop()


async def test_sigterm_closes_cleanly_and_keeps_everything(db_path: Path) -> None:
    """SIGTERM exits 0 after storing every acknowledged add."""
    server = ServerProcess(db_path)
    try:
        peer = await Peer.join(server.start(), "alice", session="s")
        for n in range(50):
            await peer.send(type="add", op=str(n), amount=2)
        acks = 0
        while acks < 50:
            acks += isinstance(await peer.receive(), Ack)
        assert await asyncio.to_thread(server.terminate) == 0
        peer = await Peer.join(server.start(), "alice", session="s")
        assert peer.welcome is not None and peer.welcome.total == 100
        await peer.close()
    finally:
        server.stop()
