"""The wire format on its own: encoding round trips and every bad input we could think of."""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path
from typing import cast

import pytest

import tally.server.protocol
from tally.server.protocol import (
    INT64_MAX,
    INT64_MIN,
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    ClientsPage,
    ClientsRequest,
    Error,
    ErrorCode,
    Hello,
    HistoryPage,
    HistoryPoint,
    HistoryRequest,
    LimitsInfo,
    Online,
    Presence,
    ProtocolError,
    Rename,
    Resume,
    ServerInfo,
    ServerMessage,
    Update,
    Welcome,
    check_name,
    decode_client,
    decode_server,
    decode_server_frame,
    encode,
    encode_batch,
    encode_welcomes,
    session_id,
)
from tally.tui.text import plain_text

ALICE = ClientInfo(id="c1", name="alice", address="127.0.0.1:5000", since=1700000000.5, added=3, tag="ab12")

SERVER_MESSAGES: list[ServerMessage] = [
    Welcome(you="c1", total=-7, seq=4, clients=(ALICE,), history=(HistoryPoint(4, 1700000001.0, -7),)),
    Welcome(you="c1", total=0, seq=0, clients=(), history=()),
    Update(seq=5, total=INT64_MAX, amount=1, name="alice", client="c1", op="op-1", at=1.5),
    Update(seq=6, total=INT64_MIN, amount=-1, name="blog client", client="c2", op=None, at=2.0),
    Presence(event="joined", client=ALICE),
    Presence(event="renamed", client=ALICE),
    Presence(event="left", client=ALICE),
    Ack(op="op-1", seq=5),
    Error(code=ErrorCode.OVERFLOW, message="too big", op="op-2"),
    Error(code=ErrorCode.BAD_MESSAGE, message="nope"),
    Error(code=ErrorCode.UNAVAILABLE, message="later", id="q7"),
    Update(seq=7, total=0, amount=-5, name="alice", client="c1", op="2", at=3.0, tag="ab12", undoes=5),
    Online(count=12_000, live=False),
    ClientsPage("q1", offset=50, total=9_000, clients=(ALICE,)),
    HistoryPage("q2", points=(HistoryPoint(1, 1.0, 5), HistoryPoint(9, 2.0, -3))),
    Welcome(
        you="c1",
        total=5,
        seq=9,
        clients=(),
        history=(),
        session="s",
        added=-4,
        ledger="L",
        epoch=3,
        server=ServerInfo("1.0", "srv"),
        limits=LimitsInfo(1000, 50.0, 100, 86400.0),
        online=5000,
        live=False,
        missed=(Update(9, 5, 5, "bob", "c2", "3", 4.0, "cd34"),),
        recent=(Update(8, 0, 1, "bob", "c2", "2", 3.5, "cd34"),),
    ),
]


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_messages_round_trip(message: ServerMessage) -> None:
    """Every server message decodes to exactly what was encoded."""
    assert decode_server(encode(message)) == message


@pytest.mark.parametrize(
    "message",
    [
        Hello(name="alice", secret="s" * 16),
        Hello(name="bot", secret="s" * 128, role="watcher", resume=Resume("L1", 3, 99)),
        Hello(name="carol", secret="s" * 16, resume=Resume("L1", 1, 7, 70, "0" * 16, "f" * 16), since=1_700_000_000.5),
        Add(op="1", amount=INT64_MIN),
        Add(op="2", amount=-5, undo="1"),
        ClientsRequest("q1", offset=50, limit=25, sort="added", descending=True, filter="al"),
        HistoryRequest("q2", since=1.5, points=300),
        Add(op="x" * 64, amount=INT64_MAX),
        Rename("b"),
    ],
    ids=repr,
)
def test_client_messages_round_trip(message: ClientMessage) -> None:
    """Every client message decodes to exactly what was encoded."""
    assert decode_client(encode(message)) == message


def test_a_v1_hello_carries_its_session_in_the_clear() -> None:
    """tally.v1 clients keep working: their hello has a session, not a secret."""
    hello = Hello(name="alice", session="laptop-1")
    assert decode_client(encode(hello, 1), 1) == hello
    with pytest.raises(ProtocolError):
        decode_client(encode(hello, 1), 2)


def test_sessions_are_proved_by_a_secret_and_kept_apart_by_version() -> None:
    """A v2 session is a hash of its secret; the same string in v1 names another session."""
    assert session_id("s" * 16) == session_id("s" * 16) != session_id("t" * 16)
    assert session_id("laptop-1", 1) != session_id("laptop-1", 2)
    assert len(session_id("x" * 16)) == 32


def test_encoding_is_compact_json_with_a_type() -> None:
    """Frames are JSON objects whose first key is the type."""
    assert encode(Ack(op="7", seq=9)) == '{"type":"ack","op":"7","seq":9}'


def test_unknown_fields_are_ignored() -> None:
    """Newer peers may send fields this version does not know."""
    assert decode_client('{"type":"add","op":"1","amount":2,"color":"red"}') == Add(op="1", amount=2)
    assert decode_server('{"type":"ack","op":"1","seq":2,"extra":[1,2]}') == Ack(op="1", seq=2)


BAD_CLIENT_FRAMES: list[tuple[str | bytes, str, str | None]] = [
    # (frame, expected code, expected op id on the error)
    (b'{"type":"add","op":"1","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ("", ErrorCode.BAD_MESSAGE, None),
    ("5", ErrorCode.BAD_MESSAGE, None),
    ("not json", ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add"', ErrorCode.BAD_MESSAGE, None),
    ("[]", ErrorCode.BAD_MESSAGE, None),
    ("null", ErrorCode.BAD_MESSAGE, None),
    ('"add"', ErrorCode.BAD_MESSAGE, None),
    ("{}", ErrorCode.BAD_MESSAGE, None),
    ('{"type":5}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":null}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"launch"}', ErrorCode.UNKNOWN_TYPE, None),
    ('{"type":"ADD","op":"1","amount":1}', ErrorCode.UNKNOWN_TYPE, None),
    ('{"type":"add","type":"add","op":"1","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"1","amount":1,"amount":2}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"1","amount":NaN}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"1","amount":Infinity}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"1","amount":-Infinity}', ErrorCode.BAD_MESSAGE, None),
    ("[" * 100_000 + "]" * 100_000, ErrorCode.BAD_MESSAGE, None),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":7,"amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"' + "x" * 65 + '","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"a\\nb","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"é","amount":1}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"add","op":"1"}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":null}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":true}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":false}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":1.0}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":1.5}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":1e3}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":"5"}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":[5]}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":{"n":5}}', ErrorCode.INVALID_AMOUNT, "1"),
    (f'{{"type":"add","op":"1","amount":{INT64_MAX + 1}}}', ErrorCode.INVALID_AMOUNT, "1"),
    (f'{{"type":"add","op":"1","amount":{INT64_MIN - 1}}}', ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":' + "9" * 5000 + "}", ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"add","op":"1","amount":-' + "9" * 100_000 + "}", ErrorCode.INVALID_AMOUNT, "1"),
    ('{"type":"hello","session":"s"}', ErrorCode.INVALID_NAME, None),
    ('{"type":"hello","name":7,"session":"s"}', ErrorCode.INVALID_NAME, None),
    ('{"type":"hello","name":"a"}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"hello","name":"a","session":""}', ErrorCode.BAD_MESSAGE, None),
    ('{"type":"rename"}', ErrorCode.INVALID_NAME, None),
    ('{"type":"rename","name":["a"]}', ErrorCode.INVALID_NAME, None),
    # Well-formed JSON, impossible numbers: 1e309 parses to infinity; a time is 0 to the end of year 9999.
    *((f'{{"type":"history","id":"h","since":{since}}}', ErrorCode.BAD_MESSAGE, None)
      for since in ("1e309", "-1e309", "1e400", "NaN", "-Infinity", "-1", "-0.001", "253402300800", "1e12",
                    "9" * 30, "-" + "9" * 5000, "true", '"0"', "null")),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "code", "op"), BAD_CLIENT_FRAMES, ids=lambda v: repr(v)[:40])
def test_bad_client_frames_raise_one_typed_error(frame: str | bytes, code: str, op: str | None) -> None:
    """Each malformed frame raises ProtocolError with a stable code and the op id when known."""
    with pytest.raises(ProtocolError) as caught:
        decode_client(frame)
    assert (caught.value.code, caught.value.op) == (code, op)
    error = caught.value.to_error()
    assert decode_server(encode(error)) == error


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"welcome","you":"c1","total":"1","seq":0,"clients":[],"history":[]}',
        '{"type":"welcome","you":"c1","total":1,"seq":0,"clients":[1],"history":[]}',
        '{"type":"welcome","you":"c1","total":1,"seq":0,"clients":[],"history":{}}',
        '{"type":"update","seq":1,"total":1,"amount":true,"name":"a","client":null,"op":null,"at":1}',
        '{"type":"presence","event":"exploded","client":{"id":"c","name":"a","address":"x","since":1,"added":0}}',
        '{"type":"presence","event":"joined","client":"c1"}',
        '{"type":"ack","op":"1","seq":1.0}',
        '{"type":"error","code":5,"message":"m"}',
        '{"type":"update","seq":1,"total":1,"amount":1,"name":"a","client":"c","op":null,"at":1e309}',
        '{"type":"update","seq":1,"total":1,"amount":1,"name":"a","client":"c","op":null,"at":-5}',
        '{"type":"store","state":"available","reason":"","since":-1e309}',
    ],
)
def test_bad_server_frames_raise(frame: str) -> None:
    """The dashboard does not trust the server either."""
    with pytest.raises(ProtocolError):
        decode_server(frame)


@pytest.mark.parametrize(
    "frame",
    ['{"type":"history","id":"h7","since":1e309}', '{"type":"history","id":"h7","since":0,"points":0}',
     '{"type":"clients","id":"h7","limit":501}', '{"type":"clients","id":"h7","sort":"age"}'],
)  # fmt: skip
def test_a_bad_request_is_refused_with_its_id(frame: str) -> None:
    """Once a request's id is read, its error carries it: the asker knows which request failed."""
    with pytest.raises(ProtocolError) as caught:
        decode_client(frame)
    assert (caught.value.code, caught.value.to_error().id) == (ErrorCode.BAD_MESSAGE, "h7")


@pytest.mark.parametrize("since", ["0", "0.5", "1700000000.25", "253402300799", "253402300799.0"])
def test_times_from_1970_to_the_end_of_year_9999_are_taken(since: str) -> None:
    """The edges of the time range are times like any other."""
    assert decode_client(f'{{"type":"history","id":"h","since":{since}}}') == HistoryRequest("h", float(since))


def test_unknown_server_type_is_reported_so_clients_can_ignore_it() -> None:
    """A newer server's new message types are distinguishable from malformed frames."""
    with pytest.raises(ProtocolError) as caught:
        decode_server('{"type":"confetti"}')
    assert caught.value.code == ErrorCode.UNKNOWN_TYPE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  bob  ", "bob"),
        ("\uff46\uff55\uff4c\uff4c", "full"),
        ("x" * 32, "x" * 32),
        ("[b]red[/b]", "[b]red[/b]"),
    ],
)
def test_names_are_normalised(raw: str, expected: str) -> None:
    """Names are NFKC-normalised and trimmed; markup is just text."""
    assert check_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "x" * 33, "a\x1b[31mred", "a\nb", "a\tb", "evil\u202eoh", "zero\u200bwidth", "bell\x07", "\ud800"],
)
def test_unsafe_names_are_refused(raw: str) -> None:
    """Empty, long, control, format and bidi characters get invalid_name."""
    with pytest.raises(ProtocolError) as caught:
        check_name(raw)
    assert caught.value.code == ErrorCode.INVALID_NAME


def test_plain_text_strips_what_a_terminal_would_interpret() -> None:
    """Escape sequences, bidi overrides and newlines never reach the screen."""
    assert plain_text("a\x1b[2Jb\u202ec\nd") == "a[2Jbc d"
    assert plain_text("x" * 300, limit=10) == "x" * 9 + "…"


def test_encode_output_is_valid_json() -> None:
    """What we send parses with any JSON parser."""
    for message in SERVER_MESSAGES:
        assert isinstance(json.loads(encode(message)), dict)


def test_a_frame_may_batch_several_messages_in_order() -> None:
    """A JSON array of messages decodes to the messages, in order; unknown types inside are left out."""
    ack, error = Ack(op="1", seq=2), Error(code="overflow", message="m", op="3")
    frame = encode_batch([encode(ack), '{"type":"confetti","n":1}', encode(error)])
    assert frame.startswith("[") and decode_server_frame(frame) == [ack, error]
    assert decode_server_frame(encode(ack)) == [ack]
    assert encode_batch([encode(ack)]) == encode(ack)


@pytest.mark.parametrize("frame", ['[{"type":"ack","op":"1","seq":true}]', "[1]", '[{"type":"ack"}]', "[[]]"])
def test_a_malformed_message_inside_a_batch_is_refused(frame: str) -> None:
    """Batching does not loosen validation: any bad element fails the frame."""
    with pytest.raises(ProtocolError):
        decode_server_frame(frame)


@pytest.mark.parametrize("version", [1, 2])
def test_welcomes_from_one_snapshot_differ_only_in_their_heads(version: int) -> None:
    """encode_welcomes encodes the shared part once and gives each joiner its own id (and, in v2, its session)."""
    shared = Welcome(you="", total=5, seq=3, clients=(ALICE,), history=(HistoryPoint(3, 1.0, 5),), ledger="L1",
                     epoch=2, online=1)  # fmt: skip
    joiners = [
        Welcome(you="c1", total=0, seq=0, clients=(), history=(), session="s1", added=7, missed=()),
        Welcome(you="c2", total=0, seq=0, clients=(), history=(), session="s2"),
    ]
    heads, body = encode_welcomes(shared, joiners, version)
    messages = [decode_server(head + body) for head in heads]
    assert all(isinstance(w, Welcome) for w in messages)
    decoded = cast("list[Welcome]", messages)
    alice = ALICE if version == 2 else dataclasses.replace(ALICE, tag="")  # v1 knows no tags
    assert [(w.you, w.total, w.seq, w.clients, w.history) for w in decoded] == [
        ("c1", 5, 3, (alice,), shared.history),
        ("c2", 5, 3, (alice,), shared.history),
    ]
    if version == 2:
        assert [(w.session, w.added, w.missed, w.ledger, w.epoch) for w in decoded] == [
            ("s1", 7, (), "L1", 2),
            ("s2", 0, None, "L1", 2),
        ]
    else:
        assert all((w.session, w.ledger) == ("", "") for w in decoded)


def test_the_protocol_package_imports_only_the_standard_library() -> None:
    """Every import in server/protocol is the standard library or the package itself (lint-imports checks the rest)."""
    package = Path(tally.server.protocol.__file__).parent
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
                imported.add(node.module)
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert {name for name in outside if not name.startswith("tally.server.protocol")} == set()


def test_a_clients_filter_is_short() -> None:
    """A filter is matched against every name online: past 64 characters it is refused."""
    longest = "a" * 64
    request = decode_client('{"type":"clients","id":"q","filter":"' + longest + '"}')
    assert request == ClientsRequest("q", filter=longest)
    with pytest.raises(ProtocolError, match="at most 64"):
        decode_client('{"type":"clients","id":"q","filter":"' + "a" * 65 + '"}')
