"""Whose server a dashboard uses: each local user's own, started only for the default address.

The tests cannot switch uid; a user is their directories (state, data, config,
runtime), which is all the dashboard goes by.
"""

from __future__ import annotations

import asyncio
import stat

from tally.server.protocol import Update
from tests.e2e.conftest import StartTally
from tests.support.local import free_port, server_pids, socket_of, unix_peer
from tests.support.terminal import until_shown


async def test_two_local_users_each_get_their_own_server(
    user: dict[str, str], other_user: dict[str, str], start_tally: StartTally
) -> None:
    """Two users' dashboards with no --url start two servers on two private sockets; an add in one stays there."""
    ann = start_tally("--name", "ann", env=user)
    bob = start_tally("--name", "bob", env=other_user)
    await until_shown(ann, "● connected")
    await until_shown(bob, "● connected")
    ann_socket, bob_socket = socket_of(user), socket_of(other_user)
    (ann_server,) = server_pids(str(ann_socket))
    (bob_server,) = server_pids(str(bob_socket))
    assert ann_server != bob_server
    assert ann.has_written(b"started your local tally-server") and bob.has_written(b"started your local tally-server")
    for path in (ann_socket, bob_socket):
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    async with await unix_peer(ann_socket) as ann_peer, await unix_peer(bob_socket) as bob_peer:
        assert ann_peer.welcome is not None and bob_peer.welcome is not None
        assert ann_peer.welcome.ledger != bob_peer.welcome.ledger
        assert {c.name for c in ann_peer.welcome.clients} == {"ann", "watcher"}
        assert {c.name for c in bob_peer.welcome.clients} == {"bob", "watcher"}
        ann.type("+5\r")
        update = await ann_peer.next_of(Update)
        assert (update.name, update.total) == ("ann", 5)
        # Once applied on ann's server, it would be on bob's too if they shared one.
        async with await unix_peer(bob_socket, "auditor") as auditor:
            assert auditor.welcome is not None
            assert (auditor.welcome.total, auditor.welcome.seq) == (0, 0)
        assert not bob.shows("ann")
    assert server_pids(str(ann_socket)) == [ann_server] and server_pids(str(bob_socket)) == [bob_server]


async def test_an_explicit_url_never_starts_a_server(user: dict[str, str], start_tally: StartTally) -> None:
    """With --url (a free local port, or even the user's own socket), nothing is started: the dashboard waits."""
    port = free_port()
    to_port = start_tally("--url", f"ws://127.0.0.1:{port}", "--name", "ann")
    to_socket = start_tally("--url", f"unix://{socket_of(user)}", "--name", "ann")
    for terminal in (to_port, to_socket):
        await until_shown(terminal, "no server is listening")
    loop = asyncio.get_running_loop()
    watch_until = loop.time() + 2.0  # a window for a server to appear in, over several reconnect attempts
    while loop.time() < watch_until:
        assert server_pids(str(port)) == [] and server_pids(user["XDG_RUNTIME_DIR"]) == []
        assert not socket_of(user).exists()
        await asyncio.sleep(0.1)
    for terminal in (to_port, to_socket):
        assert terminal.alive() and terminal.shows("no server is listening"), terminal.describe()
        assert not terminal.has_written(b"started your local")
