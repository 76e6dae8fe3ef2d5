"""`tally add`, `status` and `watch` as scripts run them: real processes, real servers, killed as the world kills them.

An add whose answer never came (the command killed, or its server killed, after
the add was stored) is retried with the same op id and counts once; negative
controls show the same checks catch a double count when the op id, or the user
(so the session), differs. While nothing answers, each command says so once on
stderr; with --fail-fast it gives up at once; ctrl+c ends it with one line.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tally.server.protocol import Update
from tests.support.local import free_port, tally_command
from tests.support.peers import Peer
from tests.support.servers import ServerProcess

ACKLESS = "tests.support.ackless_server"


@dataclass
class Run:
    status: int
    out: str
    err: str


class Tally:
    """One `tally …` process as a script starts it; its stderr is read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.err: list[str] = []

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Tally:
        process = await asyncio.create_subprocess_exec(
            tally_command(), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        return cls(process)

    async def said(self, text: str, timeout: float = 20.0) -> str:
        """The first line on stderr that holds ``text`` (waiting for it to be written)."""
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.err):
                line = await self.process.stderr.readline()
                assert line, f"stderr ended without {text!r}: {self.err}"
                self.err.append(line.decode())
        return next(line for line in self.err if text in line)

    async def finish(self, timeout: float = 100.0) -> Run:
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        return Run(await self.process.wait(), out.decode(), "".join(self.err) + err.decode())


async def tally(env: dict[str, str], *args: str) -> Run:
    return await (await Tally.start(env, *args)).finish()


async def total(env: dict[str, str], url: str) -> int:
    run = await tally(env, "status", "--json", "--url", url)
    assert run.status == 0, run
    return int(re.search(r'"total": (-?\d+)', run.out).group(1))  # type: ignore[union-attr]


async def stored(watcher: Peer, op: str) -> Update:
    """The update of ``op``, once the server has stored and published it."""
    while True:
        update = await watcher.next_of(Update, timeout=20)
        if update.op == op:
            return update


def restarted(db: Path, port: int) -> ServerProcess:
    """The real server (acks and all) on the same database and port, as after an operator's restart."""
    server = ServerProcess(db)
    server.port = port
    return server


async def test_an_add_killed_before_its_answer_and_retried_with_its_op_id_counts_once(
    tmp_path: Path, user: dict[str, str]
) -> None:
    """`tally add --op-id X 5` killed (-9) after the server stored it, then run again: +5 once; another op id adds."""
    db = tmp_path / "tally.db"
    with ServerProcess(db, module=ACKLESS) as ackless:
        url = ackless.start()
        async with await Peer.join(url, "watcher") as watcher:
            first = await Tally.start(user, "add", "--op-id", "nightly-1", "5", "--url", url)
            assert (await stored(watcher, "nightly-1")).total == 5
            first.process.kill()  # killed before its answer: the script never learns that it counted
            assert await first.process.wait() == -signal.SIGKILL
        ackless.terminate()
    with restarted(db, ackless.port) as server:
        assert server.start() == url
        retry = await tally(user, "add", "--op-id", "nightly-1", "5", "--url", url)
        assert (retry.status, retry.out) == (0, "5\n"), retry
        assert "op nightly-1 was already counted, as update 1; not added again" in retry.err
        assert await total(user, url) == 5
        # Negative control: the same add under another op id is another add, and the checks see it.
        other = await tally(user, "add", "--op-id", "nightly-2", "5", "--url", url)
        assert (other.status, other.out) == (0, "10\n"), other
        assert await total(user, url) == 10


async def test_an_add_whose_server_dies_says_how_to_retry_and_the_retry_counts_once(
    tmp_path: Path, user: dict[str, str], other_user: dict[str, str]
) -> None:
    """The server killed after storing the add: exit 4 names the op id to retry with; that retry counts once."""
    db = tmp_path / "tally.db"
    with ServerProcess(db, module=ACKLESS) as ackless:
        url = ackless.start()
        async with await Peer.join(url, "watcher") as watcher:
            first = await Tally.start(user, "add", "5", "--url", url, "--fail-fast")
            op = (await watcher.next_of(Update, timeout=20)).op  # the add, stored under the op id it chose
            assert op is not None
            ackless.kill()  # the server dies after storing the add, before anyone hears of it
        gone = await first.finish()
    assert gone.status == 4, gone
    retry_hint = re.search(r"the same command with --op-id (\S+) adds it only if it did not", gone.err)
    assert retry_hint is not None and retry_hint.group(1) == op, gone.err
    assert "may or may not have counted" in gone.err and gone.out == ""
    with restarted(db, ackless.port) as server:
        server.start()
        retry = await tally(user, "add", "--op-id", op, "5", "--url", url)
        assert (retry.status, retry.out) == (0, "5\n"), retry
        assert await total(user, url) == 5
        # Negative controls: another user (another session) with that op id, and a run without it, add again.
        theirs = await tally(other_user, "add", "--op-id", op, "5", "--url", url)
        again = await tally(user, "add", "5", "--url", url)
        assert (theirs.status, again.status) == (0, 0)
        assert await total(user, url) == 15


async def test_add_status_and_watch_say_once_what_they_wait_for_then_carry_on(
    tmp_path: Path, user: dict[str, str]
) -> None:
    """With nothing at the URL each says so on stderr, once; when a server comes they finish as if nothing happened."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    waiting = f"tally: no server at {url} yet, retrying"
    add = await Tally.start(user, "add", "5", "--url", url, "--timeout", "90")  # longer than a busy machine takes
    status = await Tally.start(user, "status", "--url", url, "--timeout", "90")
    watch = await Tally.start(user, "watch", "--url", url)
    assert (await add.said(waiting)).strip() == f"{waiting} for up to 90 s; ctrl+c stops"
    assert (await status.said(waiting)).strip() == f"{waiting} for up to 90 s; ctrl+c stops"
    assert (await watch.said(waiting)).strip() == f"{waiting}; ctrl+c stops"
    with ServerProcess(tmp_path / "tally.db") as server:
        server.port = port
        server.start()
        added, shown = await add.finish(), await status.finish()
        assert (added.status, added.out, added.err.count("retrying")) == (0, "5\n", 1), added
        assert (shown.status, shown.err.count("retrying")) == (0, 1), shown
        assert shown.out.startswith("total "), shown
        await watch.said(f"tally: connected to {url}")
        watch.process.send_signal(signal.SIGINT)
        watched = await watch.finish()
        assert (watched.status, watched.err.count("retrying")) == (0, 1), watched


async def test_fail_fast_gives_up_at_once_where_nothing_listens(user: dict[str, str]) -> None:
    """--fail-fast: exit status 4 and one line, from each command; an add says that nothing was added."""
    url = f"ws://127.0.0.1:{free_port()}"
    runs = await asyncio.gather(
        tally(user, "add", "5", "--url", url, "--fail-fast"),
        tally(user, "status", "--url", url, "--fail-fast"),
        tally(user, "watch", "--url", url, "--fail-fast"),
    )
    for run in runs:
        assert (run.status, run.out, len(run.err.splitlines())) == (4, "", 1), run
        assert run.err.startswith(f"tally: no server at {url} (--fail-fast)"), run
    assert runs[0].err.endswith(": nothing was sent, nothing was added\n")


async def test_ctrl_c_stops_a_waiting_add_with_one_line(user: dict[str, str]) -> None:
    """Ctrl-C while `tally add` waits: no traceback, one line that says nothing was added, exit status 130."""
    url = f"ws://127.0.0.1:{free_port()}"
    add = await Tally.start(user, "add", "5", "--url", url)
    await add.said("ctrl+c stops")
    add.process.send_signal(signal.SIGINT)
    run = await add.finish()
    assert run.status == 130, run
    assert run.err.splitlines()[1:] == ["tally: stopped: nothing was sent, nothing was added"], run
