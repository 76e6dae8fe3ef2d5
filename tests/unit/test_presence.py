"""The roster: who is connected, and the presence event each change produces."""

from __future__ import annotations

import pytest

from server.presence import Roster
from server.protocol import ClientInfo, Presence


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.presence.time.time", lambda: 1000.0)


def test_a_join_is_recorded_and_announced() -> None:
    """join returns the joined event with the new client, who has added nothing yet."""
    roster = Roster()
    joined = roster.join("c1", "alice", "127.0.0.1:5000")
    alice = ClientInfo(id="c1", name="alice", address="127.0.0.1:5000", since=1000.0, added=0)
    assert joined == Presence(event="joined", client=alice)
    assert (len(roster), "c1" in roster, roster["c1"], roster.clients()) == (1, True, alice, (alice,))


def test_clients_are_listed_in_join_order_as_a_snapshot() -> None:
    """clients() is a tuple in join order; later changes do not alter one already returned."""
    roster = Roster()
    roster.join("c1", "alice", "a")
    roster.join("c2", "bob", "b")
    listed = roster.clients()
    roster.leave("c1")
    assert [c.name for c in listed] == ["alice", "bob"]
    assert [c.name for c in roster.clients()] == ["bob"]


def test_a_rename_changes_only_the_name() -> None:
    """rename returns the renamed event; id, address, since and added stay."""
    roster = Roster()
    roster.join("c1", "alice", "a")
    roster.credit("c1", 5)
    renamed = roster.rename("c1", "Alicia")
    assert renamed == Presence(event="renamed", client=ClientInfo("c1", "Alicia", "a", 1000.0, 5))
    assert roster["c1"].name == "Alicia"


def test_a_leave_is_announced_once() -> None:
    """leave returns the left event with the client as last seen; leaving again (or unknown) returns None."""
    roster = Roster()
    roster.join("c1", "alice", "a")
    roster.credit("c1", 3)
    assert roster.leave("c1") == Presence(event="left", client=ClientInfo("c1", "alice", "a", 1000.0, 3))
    assert roster.leave("c1") is None and roster.leave("nobody") is None
    assert len(roster) == 0 and "c1" not in roster


def test_credits_add_up_per_client() -> None:
    """credit adds to one client's running sum, and ignores a client that has left."""
    roster = Roster()
    roster.join("c1", "alice", "a")
    roster.join("c2", "bob", "b")
    for client, amount in (("c1", 5), ("c2", -2), ("c1", -1), ("gone", 100)):
        roster.credit(client, amount)
    assert {c.id: c.added for c in roster.clients()} == {"c1": 4, "c2": -2}
