"""The witness log on its own: what a server recorded and what it noted, in a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from tally.server.state import Head, Record, Witnessed
from tally.server.witness import Witness


def _record(seq: int, op: str, *, total: int | None = None) -> Record:
    return Record(seq, 1_700_000_000.0 + seq, 5, 5 * seq if total is None else total, "ada", "c1", "s1", op, None,
                  f"{seq:016x}")  # fmt: skip


async def test_a_note_keeps_the_op_ids_of_others_and_leaves_what_this_server_recorded_as_it_was(tmp_path: Path) -> None:
    """Adds this server recorded (with the op they undo) are not written again by a note; others' adds are."""
    witness = Witness(tmp_path / "witness.db")
    try:
        mine = [Witnessed(1, _record(1, "a"), None), Witnessed(1, _record(3, "c"), "x")]
        await witness.record("L", "key", "place", mine)
        seen = [_record(1, "a"), _record(2, "b"), _record(3, "c"), _record(4, "d")]
        await witness.note("L", 1, Head(20, 4, seen[-1].digest), "key", "place", seen)
        entries = await witness.entries("L", 1)
        assert [(e.record.seq, e.record.op, e.undo) for e in entries] == [(1, "a", None), (2, "b", None),
                                                                           (3, "c", "x"), (4, "d", None)]  # fmt: skip
        mark = await witness.mark("L")
        assert mark is not None and mark.head.seq == 4
    finally:
        await witness.close()


async def test_what_this_server_recorded_in_an_older_epoch_does_not_hide_the_same_seqs_of_a_newer_one(
    tmp_path: Path,
) -> None:
    """After a repair moves the ledger to a new epoch, a note writes the new epoch's adds at seqs recorded before."""
    witness = Witness(tmp_path / "witness.db")
    try:
        await witness.record("L", "key", "place", [Witnessed(1, _record(1, "a"), None)])
        await witness.note("L", 2, Head(5, 1, "f" * 16), "key", "place", [_record(1, "z")])
        assert [e.record.op for e in await witness.entries("L", 2)] == ["z"]
        assert [e.record.op for e in await witness.entries("L", 1)] == ["a"]
    finally:
        await witness.close()
