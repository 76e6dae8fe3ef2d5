"""Property-based fuzzing of everything the server accepts, against a real server.

Each test has a server of its own; examples go through real websockets clients.
For every malformed frame the sender gets one error and the total does not move.
Then the sender adds 1 as a barrier: the next thing the sender and an observer
connected throughout receive is that add's update, so nothing else was sent to
either of them, which is checked without waiting on a clock.

Generated frames stay within the frame size limit: past it the server rightly
closes the connection with 1009, which ``test_limits.py`` tests on its own.
An example that fails (or closes a connection) leaves the next one fresh
connections, so Hypothesis can shrink it without the others failing too.

Hypothesis keeps its defaults: a new random run each time, and failures saved
in ``.hypothesis/`` and replayed first until they pass. How many examples is the
profile's (tests/conftest.py): 100 by default, 1,000 in CI.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from tally.server.app import TallyServer
from tally.server.limits import Limits
from tally.server.protocol import INT64_MAX, INT64_MIN, Ack, Error, ErrorCode, Presence, Update
from tests.support.peers import Peer
from tests.support.servers import UNLIMITED_RATE, serving
from tests.support.waiting import until

MAX_FRAME_BYTES = Limits().max_message_bytes
# No keepalive pings during a run: websockets draws their payloads from the global
# `random`, and Hypothesis rightly distrusts anything that touches it mid-example.
NO_PINGS: dict[str, Any] = {"ping_interval": None}


class Target:
    """A server, a sender and an observer; fresh connections after any example that did not pass."""

    def __init__(self, server: TallyServer) -> None:
        self.server = server
        self.peers: tuple[Peer, Peer] | None = None
        self.clean = False
        self.barriers = itertools.count()
        self.reconnects = itertools.count()

    def state(self) -> tuple[int, int]:
        return self.server.ledger.total, self.server.ledger.seq

    async def begin(self) -> tuple[Peer, Peer]:
        """The (sender, observer) for one example: reused if the last example passed, else new."""
        if self.peers is not None and self.clean and all(p.connection.state is State.OPEN for p in self.peers):
            self.clean = False
            return self.peers
        await self.close()
        n = next(self.reconnects)
        observer = await Peer.join(self.server.url, f"observer-{n}", **NO_PINGS)
        sender = await Peer.join(self.server.url, f"sender-{n}", **NO_PINGS)
        joined = await observer.expect(Presence)
        assert (joined.event, joined.client.id) == ("joined", sender.id)
        self.peers = sender, observer
        return self.peers

    async def end(self, before: tuple[int, int]) -> None:
        """Check that nothing changed and nothing else was sent, through a barrier add; then mark clean."""
        assert self.state() == before
        assert self.peers is not None
        sender, observer = self.peers
        op = f"barrier-{next(self.barriers)}"
        await sender.send(type="add", op=op, amount=1)
        for peer in (sender, observer):
            update = await peer.expect(Update)  # anything sent since the example would come first
            assert (update.op, update.seq) == (op, before[1] + 1)
        assert (await sender.expect(Ack)).op == op
        self.clean = True

    async def close(self) -> None:
        if self.peers is not None:
            ids = [peer.id for peer in self.peers]
            for peer in self.peers:
                await peer.close()
            self.peers = None
            await until(lambda: not any(i in self.server.roster for i in ids), what="the old peers gone")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A server of this test's own, without rate limits or keepalive pings."""
    async with serving(limits=UNLIMITED_RATE, ping_interval=3600) as server:
        fuzz = Target(server)
        yield fuzz
        await fuzz.close()


def fits_in_a_frame(frame: str | bytes) -> bool:
    return len(frame if isinstance(frame, bytes) else frame.encode()) <= MAX_FRAME_BYTES


# -- malformed by construction ----------------------------------------------------

json_scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20) | st.integers()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
not_an_int64 = (
    st.booleans() | st.floats() | st.text(max_size=10) | st.none() | st.lists(st.integers(), max_size=2)
    | st.integers(max_value=INT64_MIN - 1) | st.integers(min_value=INT64_MAX + 1)
)  # fmt: skip
not_an_id = st.integers() | st.none() | st.text(min_size=65) | st.just("") | st.text(alphabet="\n\t\x00é", min_size=1)
bad_names = st.one_of(
    st.integers(), st.none(), st.just(""), st.text(min_size=33, max_size=60).filter(lambda t: len(t.strip()) > 32),
    st.text(alphabet="\x00\x1b\u202e\u200b\n", min_size=1, max_size=5),
)  # fmt: skip

malformed_messages = (
    st.one_of(
        # not an object, or an object without a usable type
        json_values.filter(lambda v: not isinstance(v, dict)),
        st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), json_values, max_size=4),
        st.builds(
            lambda t, rest: {**rest, "type": t}, json_values.filter(lambda v: not isinstance(v, str)), st.just({})
        ),
        st.builds(lambda t: {"type": t}, st.text(max_size=20).filter(lambda t: t not in ("hello", "add", "rename"))),
        # known types with broken fields
        st.builds(lambda a, op: {"type": "add", "op": op, "amount": a}, not_an_int64, st.just("x")),
        st.builds(lambda op: {"type": "add", "op": op, "amount": 1}, not_an_id),
        st.builds(lambda n: {"type": "rename", "name": n}, bad_names),
        st.builds(lambda n, s: {"type": "hello", "name": n, "session": s}, st.text(max_size=5), st.text(max_size=5)),
    )
    .map(json.dumps)
    .filter(fits_in_a_frame)
)  # a large nested value can pass 4 KiB once escaped


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=malformed_messages)
async def test_malformed_messages_get_an_error_and_change_nothing(target: Target, frame: str) -> None:
    """Every malformed JSON message is answered with one error; nothing else happens."""
    sender, _ = await target.begin()
    before = target.state()
    await sender.send_raw(frame)
    reply = await sender.expect(Error)
    assert reply.code in {
        ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_AMOUNT, ErrorCode.INVALID_NAME
    }, (frame, reply)  # fmt: skip
    await target.end(before)


raw_frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    # Deep nesting and long numbers, up to the 4 KiB frame limit.
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(min_value=500, max_value=2000)),
    st.builds(lambda depth: '{"a":' * depth + "1" + "}" * depth, st.integers(min_value=300, max_value=600)),
    st.builds(lambda digits: '{"type":"add","op":"1","amount":' + "9" * digits + "}", st.integers(20, 4000)),
    st.sampled_from(["NaN", "Infinity", '{"type":"add","op":"1","amount":NaN}', '{"type":"add","type":"add"}',
                     '{"type":"add","op":"1","amount":1,"amount":2}', '{"type":"add","op":"1","amount":1e400}']),
).filter(fits_in_a_frame)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=raw_frames)
async def test_raw_frames_get_an_error_and_change_nothing(target: Target, frame: str | bytes) -> None:
    """Binary frames, random text, deep nesting and huge numbers: an error, nothing else."""
    sender, _ = await target.begin()
    before = target.state()
    await sender.send_raw(frame)
    reply = await sender.receive()
    if not isinstance(reply, Error):  # random text can be a valid message only by a miracle; then it was served
        pytest.fail(f"{frame!r} was accepted: {reply}")
    await target.end(before)


# Well-formed JSON, impossible numbers: infinity by overflow, too long to parse, before 1970, after year 9999.
impossible_times = st.one_of(
    st.sampled_from(["1e309", "-1e309", "1e400", "9" * 30, "-" + "9" * 400, "1e12", "253402300800"]),
    st.floats(max_value=-1e-300, allow_infinity=False).map(repr),
    st.floats(min_value=253_402_300_800, allow_infinity=False).map(repr),
)
impossible_history = st.builds(
    lambda since, points: f'{{"type":"history","id":"h1","since":{since},"points":{points}}}',
    impossible_times, st.integers(min_value=1, max_value=500),
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=impossible_history)
async def test_impossible_numbers_in_a_request_are_a_bad_message(
    target: Target, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A history request whose since is infinite, negative or absurd is refused as bad_message with its id (it was
    answered unavailable and logged at ERROR); nothing else happens."""
    sender, _ = await target.begin()
    before = target.state()
    await sender.send_raw(frame)
    reply = await sender.expect(Error)
    assert (reply.code, reply.id) == (ErrorCode.BAD_MESSAGE, "h1"), (frame, reply)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    await target.end(before)


async def test_invalid_utf8_closes_only_that_connection(target: Target) -> None:
    """A text frame that is not UTF-8 breaks WebSocket itself: that connection closes with 1007."""
    peers = await target.begin()
    before = target.state()
    async with await Peer.join(target.server.url, "victim", **NO_PINGS) as victim:
        for peer in peers:
            assert (await peer.expect(Presence)).event == "joined"
        # Bypass the client's own UTF-8 encoding: put a raw, invalid frame on the wire.
        async with victim.connection.send_context():
            victim.connection.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"add","op":"1","amount":1\xff}'))
        with pytest.raises(ConnectionClosed) as closed:
            await victim.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    for peer in peers:
        left = await peer.expect(Presence)
        assert (left.event, left.client.name) == ("left", "victim")
    await target.end(before)
