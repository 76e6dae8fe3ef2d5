"""The hand-written paths for adds, acks and updates give exactly what the general encoder and decoder give."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally.server.protocol import (
    INT64_MAX,
    INT64_MIN,
    Ack,
    Add,
    ProtocolError,
    Update,
    decode_client,
    decoding,
    encode,
    encoding,
)
from tally.server.protocol.plain_add import plain_add

# Strings that exercise JSON escaping: quotes, backslashes, controls, non-ASCII, astral characters.
TEXT = st.text(st.characters(codec="utf-8"), max_size=70)
IDS = st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=70), TEXT)
INTS = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.integers(), st.sampled_from([0, -1, INT64_MAX, INT64_MIN]))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def general(message: Ack | Update, version: int) -> str:
    return encoding._ENCODER.encode(encoding._to_wire(message, version))


@settings(max_examples=400)
@given(op=IDS, seq=INTS, version=st.sampled_from([1, 2]))
@example(op='a"b\\c', seq=0, version=2)
def test_ack_text_is_the_encoders(op: str, seq: int, version: int) -> None:
    """An ack written by hand is the general encoder's text, whatever its op id."""
    message = Ack(op=op, seq=seq)
    assert encode(message, version) == general(message, version)


@settings(max_examples=400)
@given(
    seq=INTS, total=INTS, amount=INTS, name=TEXT, client=IDS, op=st.none() | IDS, at=FLOATS | st.integers(0, 10**12),
    tag=TEXT, undoes=st.none() | INTS, mark=st.sampled_from(["", "0123456789abcdef"]), version=st.sampled_from([1, 2]),
)  # fmt: skip
@example(
    seq=1,
    total=1,
    amount=1,
    name="é\u2028\x00",
    client="c",
    op=None,
    at=math.inf,
    tag="",
    undoes=None,
    mark="",
    version=2,
)
def test_update_text_is_the_encoders(
    seq: int, total: int, amount: int, name: str, client: str, op: str | None, at: float, tag: str,
    undoes: int | None, mark: str, version: int,
) -> None:  # fmt: skip
    """An update written by hand is the general encoder's text, in both protocol versions."""
    message = Update(seq=seq, total=total, amount=amount, name=name, client=client, op=op, at=at, tag=tag,
                     undoes=undoes, fingerprint=mark, seal=mark[::-1])  # fmt: skip
    assert encode(message, version) == general(message, version)


def outcome(data: str, version: int) -> object:
    try:
        return decode_client(data, version)
    except ProtocolError as exc:
        return ("error", exc.code, exc.message, exc.op)


def general_outcome(data: str, version: int) -> object:
    """What the validating JSON parser alone makes of ``data``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "plain_add", lambda data, version: None)
        return outcome(data, version)


def add_text(op: object, amount: object, undo: object) -> str:
    body = {"type": "add", "op": op, "amount": amount} | ({} if undo is None else {"undo": undo})
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# Adds as a client might spell them (any op id, any amount, of any type), and amounts cut anywhere.
ADD_TEXTS = st.one_of(
    st.builds(add_text, IDS, st.one_of(INTS, st.booleans(), st.floats(), IDS), st.none() | IDS),
    st.text('0123456789-+.e}, "', max_size=30).map(lambda tail: '{"type":"add","op":"1","amount":' + tail),
)


@settings(max_examples=600)
@given(data=ADD_TEXTS, version=st.sampled_from([1, 2]))
@example(data='{"type":"add","op":"1","amount":9223372036854775808}', version=2)
@example(data='{"type":"add","op":"1","amount":-0}', version=2)
@example(data='{"type":"add","op":"1","amount":01}', version=2)
@example(data='{"type":"add","op":"1","amount":1,"undo":"2"}', version=1)
@example(data='{"type":"add","op":"1","amount":1,"amount":2}', version=2)
def test_plain_add_reads_as_the_parser_does(data: str, version: int) -> None:
    """Whatever text an add arrives as, the fast path decodes it to the same message, or the same error."""
    assert outcome(data, version) == general_outcome(data, version)


def test_plain_add_is_taken() -> None:
    """The dashboard's spelling of an add is read by the fast path (else the contract above proves nothing)."""
    text = encode(Add(op="17", amount=-5, undo="16"))
    assert plain_add(text, 2) == Add(op="17", amount=-5, undo="16")
    assert plain_add(text.replace(":-5", ": -5"), 2) is None
