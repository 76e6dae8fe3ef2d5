"""The pending-adds journal's lock: one dashboard per session file, whatever the timing."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

import pytest

from tally.tui.journal import Journal, journals_for


def test_a_held_journal_is_not_taken_twice(tmp_path: Path) -> None:
    first = Journal.try_lock(tmp_path / "s.json")
    assert first is not None
    assert Journal.try_lock(tmp_path / "s.json") is None
    first.release()
    assert Journal.try_lock(tmp_path / "s.json") is not None


def test_a_lock_file_removed_between_open_and_flock_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dashboard B removes its settled journal just as C opened the lock file: C must not lock the
    deleted file, or a later dashboard D would lock a new one and share C's session (same op ids)."""
    path = tmp_path / "s.json"
    b = Journal.try_lock(path)
    assert b is not None
    b.write({"secret": "s", "adds": []})
    real = fcntl.flock

    def b_finishes_first(fd: int, operation: int) -> Any:
        monkeypatch.setattr(fcntl, "flock", real)
        b.remove()
        return real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", b_finishes_first)
    assert Journal.try_lock(path) is None, "C passes this file by"
    d = Journal.try_lock(path)
    assert d is not None and Journal.try_lock(path) is None, "D holds a lock that others see"


def test_journals_for_adopts_the_newest_and_hands_over_the_rest(tmp_path: Path) -> None:
    ours, others = journals_for("ws://127.0.0.1:1", root=tmp_path)
    assert others == []
    ours.write({"secret": "a"})
    ours.release()
    again, others = journals_for("ws://127.0.0.1:1", root=tmp_path)
    assert again.path == ours.path and others == []
