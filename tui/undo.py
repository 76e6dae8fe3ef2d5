"""What ctrl+z and ctrl+y reach: my adds as a stack, never a timer.

Each ctrl+z takes back my most recent add still in effect (typed here, or redone),
whether or not the server has answered it yet, however long ago the last press
was; ctrl+y puts back the add undone last. Both are adds like any other (the
server's rule: an undo names the op it takes back, with the opposite amount, and
an op is undone once; an undo may itself be undone, which is a redo), so they
wait, go and count once like any other. A new add clears what ctrl+y could redo,
as in any editor. Pure: the dashboard sends; this only remembers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tally.tui.pending import PendingAdd

__all__ = ["Mine", "UndoStack"]

# How many of my adds ctrl+z can reach back to.
DEPTH = 100

Kind = Literal["add", "undo", "redo"]


@dataclass
class Mine:
    """One of my adds: typed (``add``), an ``undo`` of one in effect, or a ``redo`` of an undo; ``undoes`` is
    the op it took back."""

    op: str
    amount: int
    typed_at: float
    kind: Kind = "add"
    undoes: str | None = None
    seq: int | None = None  # the update that applied it, once the server said so


class UndoStack:
    def __init__(self) -> None:
        self.done: list[Mine] = []  # adds in effect (typed or redone), most recent last: ctrl+z takes the last
        self.undone: list[Mine] = []  # the undos that took adds back, most recent last: ctrl+y takes the last
        self._by_op: dict[str, Mine] = {}

    def clear(self) -> None:
        self.done.clear()
        self.undone.clear()
        self._by_op.clear()

    def typed(self, add: PendingAdd) -> None:
        """A new add of mine: ctrl+z reaches it at once; nothing undone before can be redone any more."""
        self.undone.clear()
        self._push(Mine(add.op, add.amount, add.typed_at))

    def take_back(self) -> Mine | None:
        """The add the next ctrl+z undoes (None if none), off the stack: :meth:`sent` puts its undo on the other."""
        return self.done.pop() if self.done else None

    def take_redo(self) -> Mine | None:
        """The undo the next ctrl+y takes back (None if none), off the stack: :meth:`sent` puts its redo back."""
        return self.undone.pop() if self.undone else None

    def sent(self, taken: Mine, add: PendingAdd) -> Mine:
        """``add`` takes ``taken`` back: an undo (ctrl+y reaches it), or a redo (ctrl+z reaches it)."""
        entry = Mine(add.op, add.amount, add.typed_at, "redo" if taken.kind == "undo" else "undo", taken.op)
        self._push(entry)
        return entry

    def acknowledged(self, op: str, seq: int) -> None:
        mine = self._by_op.get(op)
        if mine is not None:
            mine.seq = seq

    def refused(self, op: str) -> None:
        """The server refused ``op`` for good: it never counted; what it would have taken back is as before."""
        mine = self._by_op.pop(op, None)
        if mine is None:
            return
        for stack in (self.done, self.undone):
            if mine in stack:
                stack.remove(mine)
        before = None if mine.undoes is None else self._by_op.get(mine.undoes)
        if before is not None and before not in self.done and before not in self.undone:
            self._push(before)  # an undo refused: its add is in effect again; a redo refused: still undone

    def find(self, op: str) -> Mine | None:
        return self._by_op.get(op)

    def _push(self, mine: Mine) -> None:
        stack = self.undone if mine.kind == "undo" else self.done
        stack.append(mine)
        self._by_op[mine.op] = mine
        if len(stack) > DEPTH:
            del stack[0]
        # Only what the stacks hold, and what those took back, is remembered.
        held = [*self.done, *self.undone]
        kept = {m.op for m in held} | {m.undoes for m in held if m.undoes is not None}
        if len(self._by_op) > len(kept):
            self._by_op = {op: entry for op, entry in self._by_op.items() if op in kept}
