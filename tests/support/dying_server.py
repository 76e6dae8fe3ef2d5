"""``python -m tests.support.dying_server``: the real server, killed between storing an add and acknowledging it.

With ``TALLY_TEST_DIE=1``, an add whose op id starts with ``die-`` is applied in the shared store (so the other
servers see it and show it), and then this process exits at once, before its witness
keeps the add and before the ack goes out: the crash that leaves an add in the ledger
that nobody acknowledged. With ``TALLY_TEST_FORGET_SEEN=1`` the server's witness keeps no
op ids of what it saw others add (as before they were kept): the negative control of
tests/cluster/test_rewinds.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tally.server import cli
from tally.server.state import Head, Record, Witnessed
from tally.server.witness import Witness

_record = Witness.record
_note = Witness.note


async def _record_or_die(self: Witness, ledger: str, key: str, place: str, entries: Sequence[Witnessed]) -> None:
    if any((entry.record.op or "").startswith("die-") for entry in entries):
        os._exit(9)
    await _record(self, ledger, key, place, entries)


async def _note_without_ops(
    self: Witness, ledger: str, epoch: int, head: Head, key: str, place: str, seen: Sequence[Record] = ()
) -> None:
    await _note(self, ledger, epoch, head, key, place)


if __name__ == "__main__":
    if os.environ.get("TALLY_TEST_DIE") == "1":
        setattr(Witness, "record", _record_or_die)  # noqa: B010
    if os.environ.get("TALLY_TEST_FORGET_SEEN") == "1":
        setattr(Witness, "note", _note_without_ops)  # noqa: B010
    sys.exit(cli.main())
