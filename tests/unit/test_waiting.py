"""What a script says while it waits, and when --fail-fast gives up: from the link's events alone."""

from __future__ import annotations

import io

from tally.server.protocol import ServerInfo, Welcome
from tally.tui.messages import Connected, ConnectionLost
from tally.tui.retry import NOT_LISTENING
from tally.tui.scripting import Waiting

A, B = "ws://127.0.0.1:1", "ws://127.0.0.1:2"


def lost(attempt: int, reason: str = NOT_LISTENING) -> ConnectionLost:
    return ConnectionLost(reason, retry_at=0.0, attempt=attempt)


def welcome() -> Connected:
    return Connected(Welcome(you="s.1", total=0, seq=0, clients=(), history=(), server=ServerInfo("x", "s")))


def test_a_wait_is_said_once_however_many_attempts_fail() -> None:
    """Ten failed attempts make one line, which says where, for how long, and how to stop."""
    err = io.StringIO()
    waiting = Waiting([A], within=30, err=err)
    for attempt in range(1, 11):
        waiting.post(lost(attempt))
    assert err.getvalue() == f"tally: no server at {A} yet, retrying for up to 30 s; ctrl+c stops\n"
    assert waiting.hopeless is None  # without --fail-fast it never gives up by itself


def test_a_retry_at_once_is_not_a_wait() -> None:
    """Attempt 0 (a local server just started, a reconnect right after a session) says nothing."""
    err = io.StringIO()
    waiting = Waiting([A], within=None, fail_fast=True, err=err)
    waiting.post(lost(0))
    assert (err.getvalue(), waiting.hopeless) == ("", None)


def test_after_a_welcome_a_new_wait_is_said_again_and_its_end_reported() -> None:
    """Lost after being connected: a line saying why, and post() tells the caller when it ends."""
    err = io.StringIO()
    waiting = Waiting([A], within=None, err=err)
    waiting.post(lost(1))
    assert waiting.post(welcome()) is True
    assert waiting.post(welcome()) is False  # nothing was announced since
    waiting.post(lost(0, "the server stopped"))
    waiting.post(lost(1))
    assert err.getvalue().splitlines() == [
        f"tally: no server at {A} yet, retrying; ctrl+c stops",
        f"tally: {A}: {NOT_LISTENING}, retrying; ctrl+c stops",
    ]


def test_with_several_urls_the_wait_starts_when_each_has_failed() -> None:
    """A cluster with one server down is no wait: only a round where every URL failed is said."""
    err = io.StringIO()
    waiting = Waiting([A, B], within=10, err=err)
    waiting.post(lost(1))
    assert err.getvalue() == ""
    waiting.post(lost(2))
    assert err.getvalue() == f"tally: no server at {A} or {B} yet, retrying for up to 10 s; ctrl+c stops\n"


def test_fail_fast_gives_up_only_when_nothing_listens_anywhere() -> None:
    """--fail-fast: a timeout at one URL keeps it trying; refusals from every URL in a row end it."""
    waiting = Waiting([A, B], within=10, fail_fast=True, err=io.StringIO())
    waiting.post(lost(1, "the server did not answer in time"))
    waiting.post(lost(2))
    assert waiting.hopeless is None
    waiting.post(lost(3))
    assert waiting.hopeless == f"no server at {A} or {B} (--fail-fast)"


def test_fail_fast_after_a_welcome_says_the_server_is_gone() -> None:
    """A server that welcomed us and then stopped listening: 'any more', so an add knows it may have gone out."""
    waiting = Waiting([A], within=10, fail_fast=True, err=io.StringIO())
    waiting.post(welcome())
    waiting.post(lost(0, "the server went away"))
    waiting.post(lost(1))
    assert waiting.hopeless == f"no server at {A} any more (--fail-fast)"
