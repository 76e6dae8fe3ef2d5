"""What ctrl+z and ctrl+y reach (tui.undo): a stack of my adds, the same whatever the server answered meanwhile."""

from __future__ import annotations

from tally.tui.pending import Pending, PendingAdd
from tally.tui.undo import DEPTH, UndoStack


def press(stack: UndoStack, pending: Pending, *, redo: bool = False) -> PendingAdd | None:
    """One ctrl+z (or ctrl+y), as the dashboard does it: the add it sends, or None."""
    taken = stack.take_redo() if redo else stack.take_back()
    if taken is None:
        return None
    add = pending.add(-taken.amount, undo=taken.op)
    stack.sent(taken, add)
    return add


def test_each_press_undoes_the_add_before_whether_or_not_the_server_answered() -> None:
    """Two ctrl+z undo the last two adds, with their acks before, between or after the presses."""
    for acks in ("before", "between", "after"):
        stack, pending = UndoStack(), Pending()
        adds = [pending.add(n) for n in (1, 2, 3)]
        for add in adds:
            stack.typed(add)
        if acks == "before":
            for seq, add in enumerate(adds, 1):
                stack.acknowledged(add.op, seq)
        first = press(stack, pending)
        if acks == "between":
            assert first is not None
            stack.acknowledged(first.op, 4)  # the undo's ack: it is not something to undo
        second = press(stack, pending)
        assert first is not None and second is not None
        assert [(first.amount, first.undo), (second.amount, second.undo)] == [(-3, "3"), (-2, "2")], acks


def test_redo_puts_back_the_add_undone_last_and_a_new_add_ends_redo() -> None:
    """ctrl+y takes back the last undo (a redo); ctrl+z then undoes the redo; a new add leaves nothing to redo."""
    stack, pending = UndoStack(), Pending()
    stack.typed(pending.add(5))
    undo = press(stack, pending)
    redo = press(stack, pending, redo=True)
    assert undo is not None and redo is not None and (redo.amount, redo.undo) == (5, undo.op)
    again = press(stack, pending)
    assert again is not None and (again.amount, again.undo) == (-5, redo.op)
    stack.typed(pending.add(1))
    assert press(stack, pending, redo=True) is None, "a new add: nothing to redo"
    assert press(stack, pending) is not None and press(stack, pending) is None


def test_a_refused_undo_leaves_the_add_in_effect_and_a_refused_add_is_gone() -> None:
    """An undo the server refuses for good: ctrl+z reaches the add again. An add refused for good (and so its
    undo too) is not put back."""
    stack, pending = UndoStack(), Pending()
    kept = pending.add(7)
    stack.typed(kept)
    undo = press(stack, pending)
    assert undo is not None and not stack.done
    stack.refused(undo.op)
    assert [mine.op for mine in stack.done] == [kept.op] and not stack.undone
    doomed = pending.add(10**12)
    stack.typed(doomed)
    undo = press(stack, pending)
    assert undo is not None
    stack.refused(doomed.op)  # overflow
    stack.refused(undo.op)  # invalid_undo: it names an add that never counted
    assert [mine.op for mine in stack.done] == [kept.op]


def test_the_stack_is_bounded() -> None:
    """Only the last DEPTH adds can be reached; what it remembers stays as small."""
    stack, pending = UndoStack(), Pending()
    for n in range(DEPTH + 50):
        stack.typed(pending.add(n + 1))
    assert len(stack.done) == DEPTH and stack.done[0].amount == 51
    assert len(stack._by_op) == DEPTH
