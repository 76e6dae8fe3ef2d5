"""Kill -9 the real server process mid-stream: nothing acknowledged is lost or counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tally.server.protocol import Ack, Update
from tests.support.crash import CrashRun
from tests.support.crash import crash_run as crash
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED, ServerProcess


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
    with ServerProcess(db_path, *UNLIMITED) as server:
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


async def test_sigterm_closes_cleanly_and_keeps_everything(db_path: Path) -> None:
    """SIGTERM exits 0 after storing every acknowledged add."""
    with ServerProcess(db_path) as server:
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


# The server's real pacing, smaller than its defaults so that the queues built up while it is
# down exceed its burst many times over (each link sends at 80% of the rate it is told).
PACED = ("--rate", "200", "--burst", "50", "--address-rate", "2000", "--address-burst", "200")


async def crash_run(db_path: Path, *, module: str = "tally.server") -> CrashRun:
    """Four dashboards add 300 each while the one server is killed six times."""
    with ServerProcess(db_path, *PACED, module=module) as server:
        return await crash(([server]), writers=4, adds=300, kills=6)


@pytest.mark.slow
async def test_random_kills_and_lost_acks_apply_every_add_exactly_once(db_path: Path) -> None:
    """Six SIGKILLs and one ack in seven lost: the total is the sum of all adds, each applied once."""
    run = await crash_run(db_path)
    print(f"\n{run.server_kills} kills survived, {run.ops} adds checked, {run.acks_dropped} acks dropped")
    assert run.server_kills == 6 and run.acks_dropped > 50
    assert run.refused == 0, "a paced resend was refused"
    assert (run.total, run.seq) == (run.expected_total, run.ops)


@pytest.mark.slow
async def test_negative_control_without_dedupe_the_same_run_double_counts(db_path: Path) -> None:
    """With deduplication switched off, the same run counts resent adds twice, and the checks see it."""
    run = await crash_run(db_path, module="tests.support.forgetful_server")
    print(f"\ncontrol: {run.seq - run.ops} adds counted twice; total off by {run.total - run.expected_total:+,}")
    assert run.seq > run.ops and run.total > run.expected_total
