"""A store's URL as shown (never its password) and as remembered by the witness (one name however spelled)."""

from __future__ import annotations

import pytest

from tally.server.store.address import place, shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://ops:s3cret@host/1", "rediss://ops:***@host/1"),
        ("redis+sentinel://:s3cret@s1:26379,s2:26379/tally", "redis+sentinel://:***@s1:26379,s2:26379/tally"),
        ("redis://ops@host", "redis://ops@host"),  # a user name alone is no secret
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("/var/lib/tally/tally.db", "/var/lib/tally/tally.db"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, expected: str) -> None:
    """Whatever a log line, an error or the witness writes of a store's URL hides its password."""
    assert shown(url) == expected


@pytest.mark.parametrize(
    "spellings",
    [
        ("redis://127.0.0.1:6379/0", "redis://localhost", "redis://LOCALHOST:6379", "redis://:pw@[::1]/0",
         "redis://127.0.0.1?db=0"),
        ("redis+sentinel://s2:1,s1:2/tally", "redis+sentinel://:pw@s1:2,s2:1/tally/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/../tmp/redis.sock?db=0"),
    ],
)  # fmt: skip
def test_one_store_has_one_place_however_its_url_is_spelled(spellings: tuple[str, ...]) -> None:
    """Host case, loopback names, default port and database, sentinel order and credentials do not change it."""
    assert len({place(url, "tally:") for url in spellings}) == 1
    assert "pw" not in place(spellings[-1], "tally:")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("redis://host:6379/0", "redis://host:6379/1"),  # another database
        ("redis://host:6379/0", "redis://host:6380/0"),  # another port
        ("redis://127.0.0.1/0", "redis://127.0.0.2/0"),  # another address, even on loopback
        ("redis+sentinel://s1:2/tally", "redis+sentinel://s1:2/other"),  # another service
    ],
)
def test_different_stores_have_different_places(one: str, other: str) -> None:
    """Two stores never share a place, nor one store under two prefixes."""
    assert place(one, "tally:") != place(other, "tally:")
    assert place(one, "tally:") != place(one, "team2:")
