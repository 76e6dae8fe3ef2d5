"""The add rule on its own: server.state.apply_batch, with no store around it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tally.server.protocol import INT64_MAX, INT64_MIN, ErrorCode
from tally.server.state import (
    AddRequest,
    Applied,
    Duplicate,
    Head,
    OpKey,
    OpRecord,
    Record,
    Refused,
    Sealer,
    apply_batch,
    chain,
    next_total,
    saturating_add,
    seal,
    thin_to_minutes,
)


def add(amount: int, op: str | None = None, session: str | None = "s1", undo: str | None = None) -> AddRequest:
    return AddRequest(amount=amount, name="alice", client="c1", session=session if op else None, op=op, undo=undo)


def never_seen(key: OpKey) -> OpRecord | None:
    return None


def plain(head: Head) -> Head:
    """The head without its fingerprint, for tests of the arithmetic."""
    return Head(head.total, head.seq)


def test_an_empty_batch_changes_nothing() -> None:
    """No requests: no outcomes, no records, the same head."""
    result = apply_batch(Head(7, 3), [], at=1.0, applied_before=never_seen)
    assert (result.outcomes, result.records, result.head) == ([], [], Head(7, 3)), (
        "the head is not even re-fingerprinted"
    )


def test_adds_apply_in_order_on_top_of_the_head() -> None:
    """Each add gets the next seq and the running total, and its record says who added what and when."""
    result = apply_batch(Head(100, 41), [add(5, "1"), add(-2, "2"), add(10)], at=9.5, applied_before=never_seen)
    assert [replace(record, digest="") for record in result.records] == [
        Record(seq=42, at=9.5, amount=5, total=105, name="alice", client="c1", session="s1", op="1"),
        Record(seq=43, at=9.5, amount=-2, total=103, name="alice", client="c1", session="s1", op="2"),
        Record(seq=44, at=9.5, amount=10, total=113, name="alice", client="c1", session=None, op=None),
    ]
    assert result.outcomes == [Applied(record) for record in result.records]
    assert plain(result.head) == Head(113, 44)


def test_a_repeat_within_one_batch_is_a_duplicate_of_the_first() -> None:
    """The second request with the same (session, op) answers with the first one's seq and takes no seq."""
    result = apply_batch(Head(), [add(5, "1"), add(5, "1"), add(1, "2")], at=1.0, applied_before=never_seen)
    assert result.outcomes[1] == Duplicate(1)
    assert [(r.seq, r.op, r.total) for r in result.records] == [(1, "1", 5), (2, "2", 6)]
    assert plain(result.head) == Head(6, 2)


def test_an_op_applied_in_an_earlier_batch_is_a_duplicate() -> None:
    """applied_before is asked with the (session, op) key; the seq it gives is the answer."""
    asked: list[OpKey] = []

    def applied_before(key: OpKey) -> OpRecord | None:
        asked.append(key)
        return OpRecord(17, 5) if key == ("s1", "old") else None

    result = apply_batch(Head(50, 20), [add(5, "old"), add(1, "new")], at=1.0, applied_before=applied_before)
    assert result.outcomes[0] == Duplicate(17)
    assert [(r.seq, r.total) for r in result.records] == [(21, 51)]
    assert asked == [("s1", "old"), ("s1", "new")]


def test_op_ids_are_per_session() -> None:
    """The same op id from two sessions is two adds."""
    result = apply_batch(Head(), [add(1, "1", "s1"), add(2, "1", "s2")], at=1.0, applied_before=never_seen)
    assert [type(o) for o in result.outcomes] == [Applied, Applied]


def test_adds_without_an_op_id_are_never_deduplicated_or_looked_up() -> None:
    """Bare-number adds carry no op id: each one applies, and the store is not asked about them."""

    def applied_before(key: OpKey) -> OpRecord | None:
        raise AssertionError(f"asked about {key}")

    result = apply_batch(Head(), [add(1), add(1)], at=1.0, applied_before=applied_before)
    assert [r.total for r in result.records] == [1, 2]


def test_an_overflow_is_refused_and_does_not_consume_a_seq() -> None:
    """An add past the 64-bit range is refused; the next add gets the seq the refused one would have."""
    result = apply_batch(Head(INT64_MAX - 1, 9), [add(2, "1"), add(1, "2")], at=1.0, applied_before=never_seen)
    refused = result.outcomes[0]
    assert isinstance(refused, Refused) and refused.code == ErrorCode.OVERFLOW
    assert [(r.seq, r.total, r.op) for r in result.records] == [(10, INT64_MAX, "2")]
    assert plain(result.head) == Head(INT64_MAX, 10)


def test_an_overflow_below_the_range_is_refused_too() -> None:
    """The total may not go below the smallest signed 64-bit integer either."""
    result = apply_batch(Head(INT64_MIN, 1), [add(-1, "1")], at=1.0, applied_before=never_seen)
    assert isinstance(result.outcomes[0], Refused) and result.records == [] and plain(result.head) == Head(INT64_MIN, 1)


def test_a_refused_op_id_is_not_remembered() -> None:
    """A refusal changes nothing, so the same op id may apply later in the batch."""
    result = apply_batch(Head(INT64_MAX, 1), [add(1, "x"), add(-1, "x")], at=1.0, applied_before=never_seen)
    assert isinstance(result.outcomes[0], Refused)
    assert result.outcomes[1] == Applied(result.records[0]) and result.records[0].seq == 2


def test_next_total_allows_the_edges_of_the_range() -> None:
    """Exactly INT64_MAX and INT64_MIN are totals; one past either is a refusal."""
    assert next_total(INT64_MAX - 1, 1) == INT64_MAX
    assert next_total(INT64_MIN + 1, -1) == INT64_MIN
    assert isinstance(next_total(INT64_MAX, 1), Refused)
    assert isinstance(next_total(INT64_MIN, -1), Refused)


def test_an_op_resent_with_another_amount_is_a_conflict_never_an_ack() -> None:
    """The same (session, op) with a different amount is refused as conflict; nothing changes."""
    seen: dict[OpKey, OpRecord] = {("s1", "7"): OpRecord(3, 5)}
    result = apply_batch(Head(5, 3), [add(7, "7"), add(5, "7")], at=1.0, applied_before=seen.get)
    conflict = result.outcomes[0]
    assert isinstance(conflict, Refused) and conflict.code == ErrorCode.CONFLICT and "+5" in conflict.message
    assert result.outcomes[1] == Duplicate(3)
    assert (result.records, plain(result.head)) == ([], Head(5, 3))


def test_a_repeat_within_a_batch_with_another_amount_is_a_conflict() -> None:
    """Two dashboards sharing a session that pick the same op: the second is refused, not folded into the first."""
    result = apply_batch(Head(), [add(5, "1"), add(7, "1")], at=1.0, applied_before=never_seen)
    assert isinstance(result.outcomes[1], Refused) and result.outcomes[1].code == ErrorCode.CONFLICT
    assert plain(result.head) == Head(5, 1)


def test_zero_is_refused_on_every_path() -> None:
    """An add of zero (with an op id or from the bare-number path) changes nothing and takes no seq."""
    result = apply_batch(Head(9, 2), [add(0, "1"), add(0)], at=1.0, applied_before=never_seen)
    assert all(isinstance(o, Refused) and o.code == ErrorCode.INVALID_AMOUNT for o in result.outcomes)
    assert (result.records, plain(result.head)) == ([], Head(9, 2))


def test_an_undo_takes_back_an_add_of_the_same_session() -> None:
    """An undo names an earlier op of its session with the opposite amount; its record says which update."""
    seen: dict[OpKey, OpRecord] = {("s1", "1"): OpRecord(4, 5)}
    result = apply_batch(Head(5, 4), [add(-5, "2", undo="1")], at=1.0, applied_before=seen.get)
    assert [(r.seq, r.total, r.undoes) for r in result.records] == [(5, 0, 4)]
    # The undo can itself be undone (a redo), within the same batch too.
    again = apply_batch(Head(5, 4), [add(-5, "2", undo="1"), add(5, "3", undo="2")], at=1.0, applied_before=seen.get)
    assert [(r.seq, r.undoes) for r in again.records] == [(5, 4), (6, 5)]


def test_an_undo_of_an_unknown_op_or_the_wrong_amount_is_refused() -> None:
    """Another session's op, an op that was forgotten, or a different amount: invalid_undo, nothing changes."""
    seen: dict[OpKey, OpRecord] = {("s1", "1"): OpRecord(4, 5), ("s2", "9"): OpRecord(3, 2)}
    batch = [add(-4, "2", undo="1"), add(-2, "3", undo="9"), add(-1, "4", undo="nope")]
    result = apply_batch(Head(5, 4), batch, at=1.0, applied_before=seen.get)
    assert all(isinstance(o, Refused) and o.code == ErrorCode.INVALID_UNDO for o in result.outcomes)
    assert plain(result.head) == Head(5, 4)


def test_contributions_saturate_instead_of_overflowing() -> None:
    """A session's contribution is shown, never refused: it stays at the edge of the 64-bit range."""
    assert saturating_add(INT64_MAX - 1, 5) == INT64_MAX
    assert saturating_add(INT64_MIN + 1, -5) == INT64_MIN
    assert saturating_add(10, -3) == 7


def test_an_op_is_undone_once() -> None:
    """An op already taken back cannot be taken back again, in a later batch or the same one."""
    seen: dict[OpKey, OpRecord] = {("s1", "1"): OpRecord(4, 5, undone_by=6)}
    result = apply_batch(Head(5, 6), [add(-5, "7", undo="1")], at=1.0, applied_before=seen.get)
    refused = result.outcomes[0]
    assert isinstance(refused, Refused) and refused.code == ErrorCode.INVALID_UNDO and "update 6" in refused.message
    fresh: dict[OpKey, OpRecord] = {("s1", "1"): OpRecord(4, 5)}
    twice = apply_batch(Head(5, 4), [add(-5, "2", undo="1"), add(-5, "3", undo="1")], at=1.0, applied_before=fresh.get)
    assert isinstance(twice.outcomes[0], Applied) and isinstance(twice.outcomes[1], Refused)
    assert twice.undone == [(("s1", "1"), 5)], "the store is told which op to mark"


def test_every_update_carries_the_fingerprint_of_the_history_up_to_it() -> None:
    """The fingerprint chains through every update: the same history gives the same one, another does not."""
    first = apply_batch(Head(0, 0, "L1"), [add(5, "1"), add(2, "2")], at=1.0, applied_before=never_seen)
    again = apply_batch(Head(0, 0, "L1"), [add(5, "1"), add(2, "2")], at=9.0, applied_before=never_seen)
    other = apply_batch(Head(0, 0, "L1"), [add(5, "x"), add(2, "2")], at=1.0, applied_before=never_seen)
    assert [r.digest for r in first.records] == [r.digest for r in again.records], "time is not part of it"
    assert first.records[0].digest == chain("L1", 1, "s1", "1", 5, 5)
    assert first.records[1].digest == chain(first.records[0].digest, 2, "s1", "2", 2, 7) == first.head.digest
    assert other.records[1].digest != first.records[1].digest, "a different add before: a different history"
    assert len(first.head.digest) == 16 and int(first.head.digest, 16) >= 0


def test_a_seal_proves_who_said_it() -> None:
    """Only the ledger's key makes a seal; any field changed, or another key, gives another one."""
    sealed = seal("k" * 32, "L1", 1, 7, 42, "0123456789abcdef")
    assert len(sealed) == 16
    assert sealed == seal("k" * 32, "L1", 1, 7, 42, "0123456789abcdef")
    assert sealed not in {
        seal("j" * 32, "L1", 1, 7, 42, "0123456789abcdef"),
        seal("k" * 32, "L1", 2, 7, 42, "0123456789abcdef"),
        seal("k" * 32, "L1", 1, 8, 42, "0123456789abcdef"),
        seal("k" * 32, "L1", 1, 7, 43, "0123456789abcdef"),
    }


def test_a_seal_is_the_keyed_sha256_of_its_fields() -> None:
    """The seal's bytes are fixed (dashboards keep them): HMAC-SHA256 of "ledger|epoch|seq|total|fingerprint",
    16 hex digits, whether made by seal() or by one Sealer over many updates."""
    key, fields = "k" * 32, ("L1", 3, 7, -42, "0123456789abcdef")
    expected = hmac.new(key.encode(), b"L1|3|7|-42|0123456789abcdef", hashlib.sha256).hexdigest()[:16]
    sealer = Sealer(key)
    assert seal(key, *fields) == sealer(*fields) == expected
    assert sealer("L1", 3, 8, -42, "0123456789abcdef") != expected
    assert sealer(*fields) == expected, "copying the keyed HMAC leaves it as it was"


@given(key=st.text(min_size=1, max_size=200), seq=st.integers(0, 2**63 - 1), total=st.integers(-(2**63), 2**63 - 1))
def test_a_sealer_gives_the_bytes_of_hmac_for_any_key(key: str, seq: int, total: int) -> None:
    """The written-out HMAC is hmac's own for keys shorter and longer than SHA-256's block (hashed first)."""
    text = f"L|2|{seq}|{total}|0123456789abcdef".encode()
    expected = hmac.new(key.encode(), text, hashlib.sha256).hexdigest()[:16]
    assert Sealer(key)("L", 2, seq, total, "0123456789abcdef") == expected


def test_old_updates_thin_to_the_last_of_each_minute() -> None:
    """Past retention one point a minute stays: the last update of that minute."""
    assert thin_to_minutes([(1, 0.0), (2, 59.0), (3, 60.0), (4, 61.0), (5, 200.0)]) == {2, 4, 5}
