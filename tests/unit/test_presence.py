"""The roster: who is online, the presence event each change produces, when the room is live, and its pages."""

from __future__ import annotations

from tally.server.presence import Roster
from tally.server.protocol import ClientInfo, Presence


def person(client_id: str, name: str, *, since: float = 1000.0, added: int = 0) -> ClientInfo:
    return ClientInfo(id=client_id, name=name, since=since, added=added, tag=client_id[:4])


def test_a_join_is_recorded_and_announced() -> None:
    """join returns the joined event with the client as given."""
    roster = Roster()
    alice = person("c1", "alice")
    assert roster.join(alice) == Presence(event="joined", client=alice)
    assert (len(roster), "c1" in roster, roster["c1"], roster.clients()) == (1, True, alice, (alice,))


def test_clients_are_listed_in_join_order_as_a_snapshot() -> None:
    """clients() is a tuple in join order; later changes do not alter one already returned."""
    roster = Roster()
    roster.join(person("c1", "alice"))
    roster.join(person("c2", "bob"))
    listed = roster.clients()
    roster.leave("c1")
    assert [c.name for c in listed] == ["alice", "bob"]
    assert [c.name for c in roster.clients()] == ["bob"]
    assert [c.name for c in Roster().clients()] == []


def test_a_rename_changes_only_the_name() -> None:
    """rename returns the renamed event; id, since, added, address and tag stay."""
    roster = Roster()
    roster.join(person("c1", "alice"))
    roster.credit("c1", 5)
    renamed = roster.rename("c1", "Alicia")
    assert renamed == Presence(event="renamed", client=ClientInfo("c1", "Alicia", 1000.0, 5, None, "c1"))
    assert roster["c1"].name == "Alicia"


def test_a_leave_is_announced_once() -> None:
    """leave returns the left event with the client as last seen; leaving again (or unknown) returns None."""
    roster = Roster()
    roster.join(person("c1", "alice"))
    roster.credit("c1", 3)
    assert roster.leave("c1") == Presence(event="left", client=ClientInfo("c1", "alice", 1000.0, 3, None, "c1"))
    assert roster.leave("c1") is None and roster.leave("nobody") is None
    assert len(roster) == 0 and "c1" not in roster


def test_credit_sets_what_the_session_added_in_all() -> None:
    """credit sets the client's total contribution (the ledger keeps it per session), and ignores one that left."""
    roster = Roster()
    roster.join(person("c1", "alice", added=10))
    roster.join(person("c2", "bob"))
    for client, added in (("c1", 15), ("c2", -2), ("c1", 14), ("gone", 100)):
        roster.credit(client, added)
    assert {c.id: c.added for c in roster.clients()} == {"c1": 14, "c2": -2}


def test_a_room_stops_being_live_past_the_bound_and_starts_again_below_three_quarters() -> None:
    """Past live_presence people only the count is sent; back below 3/4 of it, joins and leaves are live again."""
    roster = Roster(live_presence=8)
    for n in range(8):
        roster.join(person(f"c{n}", f"p{n}"))
    assert roster.live
    roster.join(person("c8", "p8"))
    assert not roster.live
    roster.leave("c8")
    roster.leave("c7")
    assert not roster.live, "no flapping just below the bound"
    roster.leave("c6")
    assert roster.live and len(roster) == 6


def test_pages_are_sorted_filtered_and_counted() -> None:
    """A page says how many match, and holds the slice asked for in the order asked for."""
    clock = [0.0]
    roster = Roster(live_presence=2, clock=lambda: clock[0])
    for n, name in enumerate(["carol", "Alice", "bob", "alicia", "dave"]):
        roster.join(person(f"c{n}", name, since=100.0 - n, added=n * 10))
    assert not roster.live
    total, page = roster.page(offset=0, limit=2, sort="name", descending=False, filter="")
    assert (total, [c.name for c in page]) == (5, ["Alice", "alicia"])
    total, page = roster.page(offset=2, limit=10, sort="name", descending=False, filter="")
    assert [c.name for c in page] == ["bob", "carol", "dave"]
    total, page = roster.page(offset=0, limit=10, sort="added", descending=True, filter="")
    assert [c.name for c in page] == ["dave", "alicia", "bob", "Alice", "carol"]
    total, page = roster.page(offset=0, limit=10, sort="since", descending=False, filter="ALI")
    assert (total, [c.name for c in page]) == (2, ["alicia", "Alice"])


def test_a_large_rooms_pages_may_lag_by_a_moment_but_not_more() -> None:
    """In a large room a sorted view is reused for up to a second, then rebuilt."""
    clock = [0.0]
    roster = Roster(live_presence=1, clock=lambda: clock[0])
    roster.join(person("c1", "alice"))
    roster.join(person("c2", "bob"))
    assert roster.page(offset=0, limit=10, sort="name", descending=False, filter="")[0] == 2
    roster.join(person("c3", "carol"))
    assert roster.page(offset=0, limit=10, sort="name", descending=False, filter="")[0] == 2
    clock[0] = 1.5
    assert roster.page(offset=0, limit=10, sort="name", descending=False, filter="")[0] == 3
