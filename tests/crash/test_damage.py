"""A damaged, replaced or rewound database is refused at start with one clear line, never served as if nothing
happened; the operator can carry on from what is left with --accept-ledger-loss (a new epoch begins)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tally.server.protocol import Ack, Error, StoreStatus, Update, Welcome
from tests.support.peers import Peer
from tests.support.servers import REPOSITORY, UNLIMITED, UNLIMITED_RATE, ServerProcess, serving
from tests.support.waiting import until


def start_fails(db: Path, *extra: str, preexec: Callable[[], object] | None = None) -> tuple[int, str]:
    """Run the server on ``db``; it must exit by itself. Returns its exit status and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "tally.server", "--port", "0", "--db", str(db), *extra],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=preexec,
    )
    return done.returncode, done.stdout + done.stderr


async def fill(db: Path, count: int) -> str:
    """Run a server on ``db``, add ``count`` times, kill -9 it (the WAL is not checkpointed); its ledger id."""
    with ServerProcess(db, *UNLIMITED) as server:
        async with await Peer.join(server.start(), "filler") as peer:
            assert peer.welcome is not None
            ledger = peer.welcome.ledger
            for n in range(count):
                await peer.send(type="add", op=str(n), amount=1)
            while True:
                message = await peer.receive()
                if getattr(message, "op", None) == str(count - 1) and message.TYPE == "ack":
                    break
        server.kill()
    return ledger


async def test_a_database_truncated_to_nothing_is_refused(tmp_path: Path) -> None:
    """A file cut to zero bytes would start at total 0 and apply old resends again: refused, in one line."""
    db = tmp_path / "tally.db"
    await fill(db, 20)
    for path in (db, db.with_name("tally.db-wal"), db.with_name("tally.db-shm")):
        if path.exists():
            path.write_bytes(b"")
    status, printed = start_fails(db)
    assert status == 1, printed
    assert "at update 0, but ledger" in printed and "up to update 20" in printed and "--accept-ledger-loss" in printed
    assert "Traceback" not in printed and len(printed.strip().splitlines()) == 1


async def test_a_damaged_wal_after_a_crash_is_refused(tmp_path: Path) -> None:
    """Flipped bytes in the WAL lose the commits after them: the database ends before what was acknowledged."""
    db = tmp_path / "tally.db"
    await fill(db, 1000)
    wal = db.with_name("tally.db-wal")
    data = bytearray(wal.read_bytes())
    assert len(data) > 65_536, "the adds are in the WAL, not yet in the database"
    for offset in range(8192, 8192 + 64):
        data[offset] ^= 0xFF
    wal.write_bytes(bytes(data))
    status, printed = start_fails(db)
    assert status == 1 and "up to update 1000" in printed, printed
    assert "Traceback" not in printed


async def test_a_damaged_database_file_is_refused(tmp_path: Path) -> None:
    """Garbage in the middle of the main file is found by the check at start."""
    db = tmp_path / "tally.db"
    await fill(db, 300)
    with ServerProcess(db, *UNLIMITED) as server:  # a clean stop checkpoints the WAL into the file
        server.start()
        assert server.terminate() == 0
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * 4096
    for page in range(1, len(data) // 4096, 2):  # every other page after the header's
        data[page * 4096 + 8 : page * 4096 + 4000] = b"\x5a" * 3992
    db.write_bytes(bytes(data))
    status, printed = start_fails(db)
    assert status == 1 and "damaged" in printed, printed
    assert "Traceback" not in printed


async def test_an_operator_may_carry_on_from_what_is_left_in_a_new_epoch(tmp_path: Path) -> None:
    """With --accept-ledger-loss the server starts from what the file holds; dashboards see a new epoch."""
    db = tmp_path / "tally.db"
    ledger = await fill(db, 20)
    db.write_bytes(b"")
    for path in (db.with_name("tally.db-wal"), db.with_name("tally.db-shm")):
        path.unlink(missing_ok=True)
    with ServerProcess(db, "--accept-ledger-loss") as server:
        async with await Peer.join(server.start(), "alice") as alice:
            assert alice.welcome is not None
            assert (alice.welcome.total, alice.welcome.epoch) == (0, 2)
            assert alice.welcome.ledger != ledger, "an emptied file is a new ledger, and says so"
    assert any("carrying on as asked" in line for line in server.log)


def test_a_full_disk_at_first_start_is_one_line() -> None:
    """No space for the database at all: one line saying so, no traceback."""

    def tiny_files() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))

    directory = Path(os.environ["XDG_DATA_HOME"]) / "full"
    status, printed = start_fails(directory / "tally.db", preexec=tiny_files)
    assert status == 1, printed
    assert "Traceback" not in printed and "cannot be used" in printed


async def test_a_rewind_nothing_on_disk_remembers_is_caught_by_a_dashboard(tmp_path: Path) -> None:
    """An older copy restored with its sidecar too, so the check at start finds nothing: the first dashboard
    that comes back with its sealed claim of a later update gives it away; adds are refused and everyone told.
    The same claim with a seal of anyone else's making changes nothing."""
    db = tmp_path / "tally.db"
    async with serving(db, limits=UNLIMITED_RATE) as server, await Peer.join(server.url, "alice", "alice-s") as alice:
        assert alice.welcome is not None
        ledger = alice.welcome.ledger
        for n in range(5):
            await alice.send(type="add", op=str(n), amount=10)
        for _ in range(5):
            await alice.next_of(Ack)
        with sqlite3.connect(db) as source, sqlite3.connect(tmp_path / "backup.db") as copy:
            source.backup(copy)  # a copy taken now, restored later
        for n in range(5, 8):
            await alice.send(type="add", op=str(n), amount=1)
        later = [await alice.next_of(Update) for _ in range(3)]
    for path in (db, db.with_name("tally.db-wal"), db.with_name("tally.db-shm"), db.with_name("tally.db.ledger")):
        path.unlink(missing_ok=True)
    (tmp_path / "backup.db").rename(db)
    last = later[-1]
    resume = {"ledger": ledger, "epoch": 1, "seq": last.seq, "total": last.total, "fingerprint": last.fingerprint}
    async with serving(db, limits=UNLIMITED_RATE) as server, await Peer.join(server.url, "bob") as bob:
        assert (server.view.seq, server.health.state) == (5, "available"), "nothing at start tells it apart"
        forger = await Peer.connect(server.url)
        await forger.hello("mallory", "mallory-secret", resume={**resume, "seal": "0123456789abcdef"})
        await forger.expect(Welcome)
        await bob.send(type="add", op="before", amount=1)
        assert (await bob.next_of(Ack)).seq == 6, "a forged claim changed nothing"
        back = await Peer.connect(server.url)
        await back.hello("alice", "alice-s", resume={**resume, "seal": last.seal})
        told = await bob.next_of(StoreStatus)
        assert told.state == "rewound" and "update 8" in told.reason
        assert "rewound" in (server.not_ready() or "")
        await bob.send(type="add", op="after", amount=1)
        assert (await bob.next_of(Error)).code == "unavailable"
        await forger.close()
        await back.close()
    # The operator carries on from this file: the same claim now starts a new epoch, and adds go on.
    async with serving(db, limits=UNLIMITED_RATE, accept_ledger_loss=True) as server:
        back = await Peer.connect(server.url)
        await back.hello("alice", "alice-s", resume={**resume, "seal": last.seal})
        await until(lambda: server.view.epoch == 2, what="a new epoch")
        async with await Peer.join(server.url, "carol") as carol:
            assert carol.welcome is not None and carol.welcome.epoch == 2
            await carol.send(type="add", op="1", amount=1)
            assert (await carol.next_of(Ack)).seq == 7


def test_the_full_check_finds_what_the_quick_one_passes(tmp_path: Path) -> None:
    """A duplicate op id behind a unique index passes the check at start (quick_check) but not
    `tally-server check` (integrity_check), which says what it found and exits 1; a sound file exits 0."""
    db = tmp_path / "tally.db"
    check = [sys.executable, "-m", "tally.server", "check", "--db", str(db)]
    subprocess.run([sys.executable, "-m", "tally.server", "init", "--db", str(db)], cwd=REPOSITORY, check=True)
    sound = subprocess.run(check, cwd=REPOSITORY, capture_output=True, text=True, timeout=30)
    assert sound.returncode == 0 and "sound" in sound.stderr, sound.stderr
    with sqlite3.connect(db) as damaged:
        damaged.execute("DROP INDEX updates_by_op")
        rows = [(n, 1.0, 1, n, "alice", "c1", "s" * 32, "7" if n < 3 else str(n)) for n in (1, 2, 3)]
        damaged.executemany("INSERT INTO updates (seq, at, amount, total, name, client, session, op) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
        damaged.execute("CREATE INDEX updates_by_op ON updates (session, op) WHERE op IS NOT NULL")
        damaged.execute("PRAGMA writable_schema=ON")
        damaged.execute("UPDATE sqlite_master SET sql = replace(sql, 'CREATE INDEX', 'CREATE UNIQUE INDEX') "
                        "WHERE name = 'updates_by_op'")  # fmt: skip
    with sqlite3.connect(db) as probe:
        assert probe.execute("PRAGMA quick_check").fetchall() == [("ok",)], "the quick check passes it"
    found = subprocess.run(check, cwd=REPOSITORY, capture_output=True, text=True, timeout=30)
    assert found.returncode == 1 and "non-unique entry in index updates_by_op" in found.stderr, found.stderr
    assert "restore a good copy" in found.stderr and "Traceback" not in found.stderr


async def test_what_the_server_writes_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Database, WAL, shared memory, sidecar and the directory made for them: 0600 and 0700, with umask 022."""
    db = tmp_path / "new" / "place" / "tally.db"
    old = os.umask(0o022)
    try:
        async with serving(db, limits=UNLIMITED_RATE) as server, await Peer.join(server.url, "alice") as alice:
            await alice.send(type="add", op="1", amount=1)
            await alice.next_of(Ack)
            modes = {path.name: path.stat().st_mode & 0o777 for path in db.parent.iterdir()}
    finally:
        os.umask(old)
    assert modes == {name: 0o600 for name in ("tally.db", "tally.db-wal", "tally.db-shm", "tally.db.ledger")}
    assert (db.parent.stat().st_mode & 0o777, db.parent.parent.stat().st_mode & 0o777) == (0o700, 0o700)
