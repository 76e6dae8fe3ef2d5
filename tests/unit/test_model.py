"""What the dashboard knows, fed message by message: tui.model.Model."""

from __future__ import annotations

from tally.server.protocol import HISTORY_POINTS, ClientInfo, HistoryPoint, Presence, Update, Welcome
from tally.tui.model import Model

ALICE = ClientInfo(id="a1", name="alice", address="127.0.0.1:1", since=1.0, added=10)
BOB = ClientInfo(id="b2", name="bob", address="127.0.0.1:2", since=2.0, added=0)


def update(seq: int, total: int, amount: int, client: str = "a1") -> Update:
    return Update(seq=seq, total=total, amount=amount, name="x", client=client, op=None, at=float(seq))


def welcomed(*clients: ClientInfo, total: int = 10, seq: int = 3) -> Model:
    model = Model("alice")
    model.welcome(Welcome(you="a1", total=total, seq=seq, clients=clients, history=(HistoryPoint(seq, 0.0, total),)))
    return model


def test_a_new_model_knows_nothing_but_its_name() -> None:
    """Before a welcome: no id, no clients, no total, seq 0, no history, nothing to undo."""
    model = Model("alice")
    assert (model.name, model.you, model.clients, model.total, model.seq) == ("alice", None, {}, None, 0)
    assert not model.history and not model.undo.done


def test_a_welcome_replaces_everything() -> None:
    """Id, clients by id, total, seq and history all come from the latest welcome, nothing from before."""
    model = welcomed(ALICE, BOB)
    model.apply([update(4, 15, 5)])
    history = tuple(HistoryPoint(n, float(n), n) for n in range(1, HISTORY_POINTS + 11))
    model.welcome(Welcome(you="b2", total=99, seq=HISTORY_POINTS + 10, clients=(BOB,), history=history))
    assert (model.you, model.clients, model.total, model.seq) == ("b2", {"b2": BOB}, 99, HISTORY_POINTS + 10)
    assert list(model.history) == list(history[-HISTORY_POINTS:])  # the sparkline keeps the latest points


def test_updates_move_the_total_and_credit_their_clients() -> None:
    """apply takes updates in order and returns the clients whose added changed."""
    model = welcomed(ALICE, BOB)
    changed = model.apply([update(4, 15, 5, "a1"), update(5, 12, -3, "b2"), update(6, 13, 1, "a1")])
    assert changed == {"a1", "b2"}
    assert (model.total, model.seq) == (13, 6)
    assert [p.seq for p in model.history] == [3, 4, 5, 6]
    assert {c.id: c.added for c in model.clients.values()} == {"a1": 16, "b2": -3}


def test_updates_of_clients_gone_or_netting_zero_change_no_one() -> None:
    """A client not in the list is not credited; a client whose adds cancel out is not reported changed."""
    model = welcomed(ALICE)
    changed = model.apply([update(4, 20, 10, "gone"), update(5, 25, 5, "a1"), update(6, 20, -5, "a1")])
    assert changed == set()
    assert (model.total, model.seq, model.clients["a1"].added) == (20, 6, 10)


def test_presence_joins_renames_and_leaves() -> None:
    """presence updates the list and returns the name the client had before (None if it was unknown)."""
    model = welcomed(ALICE)
    assert model.presence(Presence(event="joined", client=BOB)) is None
    robert = ClientInfo(id="b2", name="Robert", address=BOB.address, since=BOB.since, added=0)
    assert model.presence(Presence(event="renamed", client=robert)) == "bob"
    assert model.clients["b2"].name == "Robert"
    assert model.presence(Presence(event="left", client=robert)) == "Robert"
    assert list(model.clients) == ["a1"]
    assert model.presence(Presence(event="left", client=robert)) is None  # leaving twice is harmless


def test_in_a_large_room_i_know_myself_though_the_welcome_lists_nobody() -> None:
    """me is made from the welcome (my id, name, what my session added), credited by my updates, renamed."""
    model = Model("alice")
    model.welcome(Welcome(you="a1", total=5, seq=3, clients=(), history=(), added=40, online=5000, live=False))
    assert model.me is not None and (model.me.id, model.me.name, model.me.added) == ("a1", "alice", 40)
    model.apply([update(4, 10, 5, "a1"), update(5, 11, 1, "zz")])
    assert model.me.added == 45
    model.rename("Alicia")
    assert model.me.name == "Alicia" and model.name == "Alicia"


def test_the_chart_starts_from_what_the_welcome_has_and_follows_updates() -> None:
    """The series of the chosen window begins with the welcome's points (or the total now) and takes updates."""
    model = welcomed(ALICE, total=10, seq=3)
    model.apply([update(4, 15, 5)])
    assert [p.seq for p in model.series.points] == [3, 4]
    model.choose_window("hour")
    assert model.series.window.name == "hour" and [p.seq for p in model.series.points] == [3, 4]
    model.history_arrived([HistoryPoint(1, 0.5, 1), HistoryPoint(4, 4.0, 15)], now=5.0)
    assert [p.seq for p in model.series.points] == [1, 4] and model.series.loaded
    empty = Model("bob")
    empty.welcome(Welcome(you="b2", total=7, seq=9, clients=(), history=()))
    assert [(p.seq, p.total) for p in empty.series.points] == [(9, 7)]
