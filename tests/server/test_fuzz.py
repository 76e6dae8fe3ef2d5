"""Property-based fuzzing of everything the server accepts, against a real server.

The server runs in a background thread (its own event loop); examples go
through real websockets clients. For every malformed frame the sender gets an
error (or, for frames that break WebSocket itself, a protocol close), the total
does not move, and an observer connected throughout receives nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from server.app import ServerConfig, TallyServer
from server.limits import Limits
from server.protocol import INT64_MAX, INT64_MIN

EXAMPLES = 1000


class ThreadedServer:
    """A real TallyServer on its own loop in a thread, for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # No keepalive pings during a run: websockets draws their payloads from the global
        # `random`, and Hypothesis rightly distrusts anything that touches it mid-example.
        config = ServerConfig(port=0, db=":memory:", limits=Limits(rate=1e9, burst=1_000_000), ping_interval=3600)
        self.server = TallyServer(config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.server.start())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def state(self) -> tuple[int, int]:
        async def read() -> tuple[int, int]:
            return self.server.ledger.total, self.server.ledger.seq

        result: tuple[int, int] = self.call(read())
        return result

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def join(stack: contextlib.ExitStack, url: str, name: str) -> ClientConnection:
    client = stack.enter_context(connect(url, subprotocols=["tally.v1"], max_size=None, ping_interval=None))  # type: ignore[list-item]
    client.send(json.dumps({"type": "hello", "name": name, "session": f"fuzz-{name}"}))
    assert json.loads(client.recv(timeout=5))["type"] == "welcome"
    return client


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[ThreadedServer, ClientConnection, ClientConnection]]:
    served = ThreadedServer()
    with contextlib.ExitStack() as stack:
        observer = join(stack, served.server.url, "observer")
        sender = join(stack, served.server.url, "sender")
        observer.recv(timeout=5)  # sender joined
        yield served, sender, observer
    served.close()


def assert_unaffected(served: ThreadedServer, observer: ClientConnection, before: tuple[int, int]) -> None:
    assert served.state() == before
    with pytest.raises(TimeoutError):
        frame = observer.recv(timeout=0.001)
        raise AssertionError(f"the observer received {frame!r}")


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

malformed_messages = st.one_of(
    # not an object, or an object without a usable type
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), json_values, max_size=4),
    st.builds(lambda t, rest: {**rest, "type": t}, json_values.filter(lambda v: not isinstance(v, str)), st.just({})),
    st.builds(lambda t: {"type": t}, st.text(max_size=20).filter(lambda t: t not in ("hello", "add", "rename"))),
    # known types with broken fields
    st.builds(lambda a, op: {"type": "add", "op": op, "amount": a}, not_an_int64, st.just("x")),
    st.builds(lambda op: {"type": "add", "op": op, "amount": 1}, not_an_id),
    st.builds(lambda n: {"type": "rename", "name": n}, bad_names),
    st.builds(lambda n, s: {"type": "hello", "name": n, "session": s}, st.text(max_size=5), st.text(max_size=5)),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=malformed_messages)
def test_malformed_messages_get_an_error_and_change_nothing(
    fuzz_target: tuple[ThreadedServer, ClientConnection, ClientConnection], message: Any
) -> None:
    """Every malformed JSON message is answered with one error; nothing else happens."""
    served, sender, observer = fuzz_target
    before = served.state()
    sender.send(json.dumps(message))
    reply = json.loads(sender.recv(timeout=5))
    assert reply["type"] == "error" and reply["code"] in {
        "bad_message", "unknown_type", "invalid_amount", "invalid_name"
    }, (message, reply)  # fmt: skip
    assert_unaffected(served, observer, before)


raw_frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    # Deep nesting and long numbers, kept under the 4 KiB frame limit (past it: 1009, tested elsewhere).
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(min_value=500, max_value=2000)),
    st.builds(lambda depth: '{"a":' * depth + "1" + "}" * depth, st.integers(min_value=300, max_value=600)),
    st.builds(lambda digits: '{"type":"add","op":"1","amount":' + "9" * digits + "}", st.integers(20, 4000)),
    st.sampled_from(["NaN", "Infinity", '{"type":"add","op":"1","amount":NaN}', '{"type":"add","type":"add"}',
                     '{"type":"add","op":"1","amount":1,"amount":2}', '{"type":"add","op":"1","amount":1e400}']),
)  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=raw_frames)
def test_raw_frames_get_an_error_and_change_nothing(
    fuzz_target: tuple[ThreadedServer, ClientConnection, ClientConnection], frame: str | bytes
) -> None:
    """Binary frames, random text, deep nesting and huge numbers: an error, nothing else."""
    served, sender, observer = fuzz_target
    before = served.state()
    sender.send(frame)
    reply = json.loads(sender.recv(timeout=5))
    if reply["type"] != "error":  # random text can be a valid message only by a miracle; then it was served
        pytest.fail(f"{frame!r} was accepted: {reply}")
    assert_unaffected(served, observer, before)


def test_invalid_utf8_closes_only_that_connection(
    fuzz_target: tuple[ThreadedServer, ClientConnection, ClientConnection],
) -> None:
    """A text frame that is not UTF-8 breaks WebSocket itself: that connection closes with 1007."""
    served, _, observer = fuzz_target
    before = served.state()
    with contextlib.ExitStack() as stack:
        victim = join(stack, served.server.url, "victim")
        observer.recv(timeout=5)  # victim joined
        # Bypass the client's own UTF-8 encoding: put a raw, invalid frame on the wire.
        with victim.send_context():
            victim.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"add","op":"1","amount":1\xff}'))
        with pytest.raises(ConnectionClosed) as closed:
            victim.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert json.loads(observer.recv(timeout=5))["event"] == "left"
    assert_unaffected(served, observer, before)
