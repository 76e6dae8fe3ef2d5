"""The dashboard's record of adds typed and not yet acknowledged: tui.pending.Pending."""

from __future__ import annotations

from tally.tui.pending import Pending, PendingAdd


def test_each_add_gets_a_fresh_op_id_in_the_order_typed() -> None:
    """Op ids count up from 1; iteration is in the order typed; amount is their sum."""
    pending = Pending()
    first, second = pending.add(5, at=10.0), pending.add(-2, at=11.0)
    assert (first, second) == (PendingAdd("1", 5, 10.0), PendingAdd("2", -2, 11.0))
    assert list(pending) == [first, second]
    assert (len(pending), pending.amount, "1" in pending, "3" in pending) == (2, 3, True, False)
    assert pending.get("2") == second and pending.get("3") is None


def test_settling_forgets_an_add_once() -> None:
    """settle returns the add the first time and None after; its op id is never handed out again."""
    pending = Pending()
    typed = pending.add(5, at=1.0)
    assert pending.settle("1") == typed
    assert pending.settle("1") is None and pending.settle("unknown") is None
    assert len(pending) == 0 and pending.amount == 0
    assert pending.add(7, at=2.0).op == "2"


def test_settling_while_iterating_is_safe() -> None:
    """Iteration walks a copy, so acks may settle adds while the connection resends them."""
    pending = Pending()
    for amount in (1, 2, 3):
        pending.add(amount, at=0.0)
    for add in pending:
        pending.settle(add.op)
    assert len(pending) == 0
