"""The scripts' session secret: the same on every run for one user and server, different for another server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tally.tui.script_session import ScriptSessionError, script_secret


def test_the_secret_is_the_same_on_every_run(tmp_path: Path) -> None:
    """Two runs against one server prove the same session; the key is made once, private to the user."""
    key = tmp_path / "state" / "script.key"
    first = script_secret(["ws://127.0.0.1:8765"], key_path=key)
    assert script_secret(["ws://127.0.0.1:8765"], key_path=key) == first
    assert len(first) == 64 and first.isascii() and first.isprintable()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert [path.name for path in key.parent.iterdir()] == ["script.key"]  # no temporary left behind


def test_each_server_gets_its_own_secret(tmp_path: Path) -> None:
    """No server is sent the secret another one is: a cluster's URLs in any order are one server."""
    key = tmp_path / "script.key"
    one = script_secret(["ws://a.example:8765"], key_path=key)
    assert script_secret(["ws://b.example:8765"], key_path=key) != one
    assert script_secret(["wss://a", "wss://b"], key_path=key) == script_secret(["wss://b", "wss://a"], key_path=key)


def test_another_user_has_another_secret(tmp_path: Path) -> None:
    """Two users (two keys) never share a session at one server, so never each other's op ids."""
    url = ["ws://127.0.0.1:8765"]
    assert script_secret(url, key_path=tmp_path / "a" / "key") != script_secret(url, key_path=tmp_path / "b" / "key")


def test_a_key_made_first_by_another_script_is_the_one_used(tmp_path: Path) -> None:
    """A key already there is read, never replaced: scripts started at once for the first time agree."""
    key = tmp_path / "script.key"
    key.write_text("ab" * 32 + "\n")
    before = script_secret(["ws://x"], key_path=key)
    key.unlink()
    key.write_text("ab" * 32 + "\n")
    assert script_secret(["ws://x"], key_path=key) == before
    assert key.read_text() == "ab" * 32 + "\n"


@pytest.mark.parametrize("content", ["", "short", "zz" * 32])
def test_a_key_not_written_by_tally_is_refused(tmp_path: Path, content: str) -> None:
    """A damaged or foreign key file is an error that says what to do, not a new session in silence."""
    key = tmp_path / "script.key"
    key.write_text(content)
    with pytest.raises(ScriptSessionError, match="is not a key Tally wrote; remove it"):
        script_secret(["ws://x"], key_path=key)


def test_a_state_directory_that_cannot_be_made_is_said(tmp_path: Path) -> None:
    """No key can be made (here a file stands where the directory should be): one clear error naming the file."""
    (tmp_path / "state").write_text("not a directory")
    with pytest.raises(ScriptSessionError, match=r"cannot keep the scripts' session key in .*state/script\.key"):
        script_secret(["ws://x"], key_path=tmp_path / "state" / "script.key")
