"""Server URLs: which ones the dashboard accepts, and how it shows them without secrets."""

from __future__ import annotations

import re

import pytest

from tally.tui.urls import check_url, public_url


@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:8765", "wss://tally.example", "ws://localhost:8765/tally.v1", "ws://[::1]:8765",
     "wss://user:secret@tally.example:443/", "unix:///run/user/1000/tally/tally.sock"],
)  # fmt: skip
def test_ws_and_wss_urls_with_a_host_and_unix_sockets_are_accepted(url: str) -> None:
    """check_url returns a usable URL unchanged."""
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("127.0.0.1:8765", "has no scheme: write ws://127.0.0.1:8765"),
        ("localhost:8765", "has no scheme"),
        ("tally.example", "has no scheme"),
        ("http://tally.example", "must be ws://, wss:// or unix://, not http://"),
        ("unix://tally.sock", "write unix:///absolute/path/to/socket"),
        ("ws://", "names no host"),
        ("ws://:8765", "names no host"),
        ("ws://host:99999", "the port must be a number"),
        ("ws://host:http", "the port must be a number"),
    ],
)
def test_unusable_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    """check_url raises ValueError saying what is wrong, before anything connects."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765"),
        ("ws://alice:secret@tally.example:8765/tally.v1", "ws://tally.example:8765/tally.v1"),
        ("wss://token@tally.example", "wss://tally.example"),
        ("ws://u:p@[::1]:8765", "ws://[::1]:8765"),
        ("wss://:pw@host/", "wss://host/"),
    ],
)
def test_public_url_drops_credentials_and_keeps_the_rest(url: str, shown: str) -> None:
    """Whatever was in user:password never reaches the screen; host, port and path do."""
    assert public_url(url) == shown
