"""Fixtures of the end-to-end tests: a local user's environment, and dashboards in real terminals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.local import kill_pids, server_pids, tally_command, user_env
from tests.support.terminal import Terminal

StartTally = Callable[..., Terminal]


@pytest.fixture
def user() -> Iterator[dict[str, str]]:
    """This test's local user (its private directories); any server started for it is killed at the end."""
    env = user_env()
    yield env
    kill_pids(server_pids(env["XDG_RUNTIME_DIR"]))


@pytest.fixture
def start_tally(user: dict[str, str]) -> Iterator[StartTally]:
    """Start ``tally ARGS`` in a terminal of 80x24 (or ``size``) as ``env``'s user (default: ``user``)."""
    started: list[Terminal] = []
    homes: list[str] = []

    def start(*args: str, env: dict[str, str] | None = None, size: tuple[int, int] = (80, 24)) -> Terminal:
        env = user if env is None else env
        homes.append(env["XDG_RUNTIME_DIR"])
        terminal = Terminal([tally_command(), *args], env, size)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        terminal.kill()
    for home in homes:
        kill_pids(server_pids(home))


@pytest.fixture
def other_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A second local user, with directories of their own (a short path: sockets have a length limit)."""
    env = user_env(Path(tmp_path_factory.mktemp("bob")))
    yield env
    kill_pids(server_pids(env["XDG_RUNTIME_DIR"]))


# What a dashboard says when a connection is accepted and closed before any HTTP answer, as a
# server being killed does: it then stops retrying (a product bug, see
# test_a_server_dying_during_the_handshake_is_retried). Tests about something else press ctrl+r,
# the user's remedy, so that they do not fail by that bug.
