"""Where the clients table's rows come from: tui.pager.Pager, against a model and a recorded request function."""

from __future__ import annotations

from tally.server.protocol import ClientInfo, ClientsPage, Online, Welcome
from tally.tui.model import Model
from tally.tui.pager import GIVE_UP_AFTER, STALE_AFTER, Pager, View


def person(n: int) -> ClientInfo:
    return ClientInfo(id=f"p{n}", name=f"person {n:05d}", since=float(n), added=n)


class Requests:
    def __init__(self) -> None:
        self.sent: list[tuple[int, int, View]] = []

    def __call__(self, offset: int, limit: int, view: View) -> str:
        self.sent.append((offset, limit, view))
        return f"q{len(self.sent)}"


def room(live: bool, people: int) -> Model:
    model = Model("me")
    clients = tuple(person(n) for n in range(people)) if live else ()
    model.welcome(Welcome(you="p0", total=0, seq=0, clients=clients, history=(), online=people, live=live))
    return model


def test_a_live_room_is_paged_from_the_model_without_asking() -> None:
    """Sorted and filtered like the server would, at once."""
    requests = Requests()
    pager = Pager(room(True, 30), requests)
    total, rows = pager.want(View(5, 3, "added", True, ""), 0.0)
    assert (total, [c.id for c in rows if c]) == (30, ["p24", "p23", "p22"])
    total, rows = pager.want(View(0, 10, "name", False, "0002"), 0.0)
    assert total == 11 and all(c is not None and "0002" in c.name for c in rows)  # 00002, 00020 … 00029
    assert requests.sent == []


def test_a_large_room_asks_for_a_block_around_the_view_one_request_at_a_time() -> None:
    """Rows not here yet are None; the answer fills them; further wishes wait for it."""
    requests = Requests()
    model = room(False, 10_000)
    pager = Pager(model, requests)
    view = View(100, 20, "name", False, "")
    total, rows = pager.want(view, 0.0)
    assert total == 10_000 and rows == [None] * 20
    assert requests.sent == [(80, 60, view)]
    pager.want(View(101, 20, "name", False, ""), 0.1)
    assert len(requests.sent) == 1, "one request at a time"
    page = ClientsPage(id="q1", offset=80, total=10_000, clients=tuple(person(n) for n in range(80, 140)))
    answered = pager.arrived(page, 0.2)
    assert answered is not None
    shown, (total, rows) = answered
    assert shown.offset == 101 and [c.id for c in rows if c] == [f"p{n}" for n in range(101, 121)]
    assert len(requests.sent) == 1, "the block already covers the latest wish"


def test_old_blocks_are_fetched_again_and_lost_answers_given_up_on() -> None:
    """After STALE_AFTER the block is asked for again (and shown meanwhile); a lost answer does not block forever."""
    requests = Requests()
    pager = Pager(room(False, 500), requests)
    view = View(0, 10, "name", False, "")
    pager.want(view, 0.0)
    pager.arrived(ClientsPage(id="q1", offset=0, total=500, clients=tuple(person(n) for n in range(30))), 0.0)
    assert pager.want(view, 1.0)[1][0] is not None and len(requests.sent) == 1
    assert pager.want(view, STALE_AFTER + 0.1)[1][0] is not None and len(requests.sent) == 2
    pager.want(view, STALE_AFTER + 1)
    assert len(requests.sent) == 2, "still waiting for the answer"
    pager.want(view, STALE_AFTER + GIVE_UP_AFTER + 1)
    assert len(requests.sent) == 3, "the answer was lost: asked again"


def test_answers_to_other_requests_or_given_up_on_are_ignored() -> None:
    """Only the answer to the request in flight is shown."""
    pager = Pager(room(False, 500), Requests())
    pager.want(View(0, 10, "name", False, ""), 0.0)
    assert pager.arrived(ClientsPage(id="other", offset=0, total=1, clients=()), 0.0) is None


def test_a_room_that_becomes_live_is_paged_from_the_model_again() -> None:
    """Online(live=True) asks for the whole list once; the model serves pages after it."""
    model = room(False, 500)
    assert model.count(Online(count=200, live=True)) is True
    model.page_arrived(ClientsPage(id="all", offset=0, total=2, clients=(person(0), person(1))))
    assert sorted(model.clients) == ["p0", "p1"]
    assert Pager(model, Requests()).want(View(0, 10, "name", False, ""), 0.0)[0] == 2
