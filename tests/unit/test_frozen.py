"""quick_init gives frozen, slotted dataclasses a faster __init__ that makes the very same objects."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.server.protocol import Ack, Update
from tally.server.protocol.frozen import quick_init
from tally.server.state import AddRequest, OpRecord, Record


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    """The dataclass as dataclasses makes it."""

    a: int
    b: str | None = None
    c: float = 1.5


@quick_init
@dataclasses.dataclass(frozen=True, slots=True)
class Quick:
    """The same fields, with quick_init."""

    a: int
    b: str | None = None
    c: float = 1.5


@given(a=st.integers(), b=st.none() | st.text(), c=st.floats(allow_nan=False))
def test_the_same_fields_whether_given_by_position_keyword_or_default(a: int, b: str | None, c: float) -> None:
    """Every way of calling the new __init__ sets what the dataclass's own would."""
    fields = dataclasses.astuple
    assert fields(Quick(a, b, c)) == fields(Plain(a, b, c)) == (a, b, c)
    assert fields(Quick(a, c=c)) == fields(Plain(a, c=c))
    assert fields(Quick(a=a)) == fields(Plain(a=a))
    assert hash(Quick(a, b, c)) == hash(Quick(a, b, c)) and Quick(a, b, c) == Quick(a, b, c)


def test_still_frozen_and_checked_like_a_dataclass() -> None:
    """Fields cannot be assigned afterwards; a missing or unknown argument is refused as before."""
    quick = Quick(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, d=2)  # type: ignore[call-arg]
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))


def test_the_hot_classes_keep_their_signatures() -> None:
    """The messages and records made for every add have their dataclass signatures and replace() works."""
    for cls in (Update, Ack, AddRequest, Record, OpRecord):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    record = OpRecord(3, 5)
    assert dataclasses.replace(record, undone_by=9) == OpRecord(3, 5, None, 9)


def test_a_class_it_cannot_copy_is_refused() -> None:
    """A field with a default factory (not handled) is refused at import, not misbuilt."""
    with pytest.raises(AssertionError):

        @quick_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class Factory:
            items: list[int] = dataclasses.field(default_factory=list)
