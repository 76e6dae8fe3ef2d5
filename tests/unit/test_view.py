"""What a server knows of its ledger, and how it judges a dashboard's sealed claim of where it left off."""

from __future__ import annotations

from tally.server.protocol import Resume
from tally.server.state import AddRequest, Applied, Head, Record, Snapshot, apply_batch, seal
from tally.server.view import LedgerView

KEY = "k" * 32


def view_with(count: int, *, epoch: int = 1) -> LedgerView:
    """A view of ledger L1 holding ``count`` real updates."""
    view = LedgerView()
    view.load(Snapshot("L1", epoch, Head(0, 0, "L1"), (), {}, KEY))
    batch = apply_batch(
        view.head, [AddRequest(n + 1, "alice", "c1", "s1", str(n)) for n in range(count)], at=1.0,
        applied_before=lambda key: None,
    )  # fmt: skip
    view.take([o.record for o in batch.outcomes if isinstance(o, Applied)])
    return view


def claim(view: LedgerView, record: Record, *, key: str = KEY, epoch: int | None = None) -> Resume:
    """The resume a dashboard sends after ``record``, sealed with ``key``."""
    at_epoch = view.epoch if epoch is None else epoch
    sealed = seal(key, view.id, at_epoch, record.seq, record.total, record.digest)
    return Resume(view.id, at_epoch, record.seq, record.total, record.digest, sealed)


def test_a_claim_the_view_holds_is_nothing_to_fear() -> None:
    """A dashboard that saw update 3 of this history, resuming on a server at update 5: all is well."""
    view = view_with(5)
    assert view.judge(claim(view, view.recent[2])).claim is None


def test_a_claim_of_another_history_at_the_same_seq_is_a_rewind() -> None:
    """Sealed by this ledger, same seq, another fingerprint: the store went back and grew again."""
    view = view_with(5)
    other = view_with(5)
    other.recent[2] = Record(3, 1.0, 99, 105, "bob", "c9", "s9", "x", None, "0123456789abcdef")
    judgement = view.judge(claim(view, other.recent[2]))
    assert "another history at update 3" in judgement.rewound and judgement.claim is not None


def test_a_claim_ahead_of_the_view_is_checked_against_the_store() -> None:
    """The dashboard saw more than this server has: the store is asked (this server may just lag)."""
    ahead = view_with(8)
    view = view_with(5)
    judgement = view.judge(claim(ahead, ahead.recent[-1]))
    assert (judgement.rewound, judgement.ask) == ("", 8) and judgement.claim is not None
    assert judgement.claim.head == Head(ahead.recent[-1].total, 8, ahead.recent[-1].digest)


def test_a_claim_nobody_sealed_proves_nothing() -> None:
    """A forged seal (another key) or a claim without one is ignored: no client can stop the servers."""
    ahead = view_with(8)
    view = view_with(5)
    assert view.judge(claim(ahead, ahead.recent[-1], key="x" * 32)).claim is None
    assert view.judge(Resume("L1", 1, 8)).claim is None


def test_a_claim_of_another_epoch_or_ledger_is_left_to_the_resync() -> None:
    """An older epoch (before a repair) or another ledger: the dashboard resynchronises; nothing is reported."""
    view = view_with(5, epoch=2)
    old = view_with(8, epoch=1)
    assert view.judge(claim(old, old.recent[-1])).claim is None


def test_missed_and_digest_at_survive_thinned_records() -> None:
    """Records older than retention are thinned: lookups by seq still find the right one, or none."""
    view = view_with(6)
    del view.recent[1]  # seq 2 thinned out
    assert view.digest_at(3) == view.recent[1].digest and view.digest_at(2) is None
    assert view.missed(0) is None, "not all of them: a snapshot instead"
    assert view.missed(2) is not None


def test_the_seal_follows_the_key() -> None:
    """The view's seal of an update is seal() with the ledger's key now, also after the key is learnt anew."""
    view = view_with(2)
    head = view.head
    assert view.seal(head.seq, head.total, head.digest) == seal(KEY, "L1", 1, head.seq, head.total, head.digest)
    view.key = "j" * 32
    assert view.seal(head.seq, head.total, head.digest) == seal("j" * 32, "L1", 1, head.seq, head.total, head.digest)
    view.key = ""
    assert view.seal(head.seq, head.total, head.digest) == "", "no key, no seal"
