"""Frames cut by the connection itself (tally.server.framing) change nothing a client can see.

A raw client sends a stream of frames of every kind websockets handles (plain adds, long
ones, adds spelled otherwise, renames, pings, pongs, binary and fragmented messages)
and of the kinds it refuses (invalid UTF-8, past the size limit, unmasked, an unknown
opcode, a reserved bit, a long control frame), then a closing add. The server's side
of the socket is cut into reads at generated offsets, so frames straddle reads at every
byte. The same stream goes to a server that leaves every frame to websockets, as before;
both must answer alike: the same updates in the same order, the same acks in the same
order, the same errors, the same pongs, the same close code and reason. (How adds fall
into commits, and so how acks interleave with updates, is timing, not framing.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tally.server.connection import HOLD, TallyConnection
from tally.server.limits import Limits
from tally.server.protocol import Ack, Error, Update, Welcome, decode_server_frame
from tally.server.session import DashboardSession
from tests.support.peers import Peer
from tests.support.servers import serving

MAX = Limits().max_message_bytes
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04", rsv: int = 0,
          masked: bool = True, length: int | None = None, wide: int = 0) -> bytes:  # fmt: skip
    """A client frame; ``length`` claims another payload length, ``wide`` spells it in 2 or 8 bytes anyway."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    if wide == 8 or size > 0xFFFF:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    elif wide == 2 or size > 125:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | size])
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def add(op: str, amount: int, undo: str | None = None) -> bytes:
    """An add as the dashboard spells it (the plain path)."""
    return (f'{{"type":"add","op":"{op}","amount":{amount}' + (f',"undo":"{undo}"' if undo else "") + "}").encode()


LONG = "x" * 60  # long op ids: an undo naming one takes a 2-byte length
KINDS: dict[str, Callable[[int, bytes], bytes]] = {
    "add": lambda n, m: frame(TEXT, add(f"a{n}", n % 7 - 3), mask=m),  # 0 among them: refused by the rule
    "long add": lambda n, m: (
        frame(TEXT, add(f"{LONG}{n}", 5), mask=m) + frame(TEXT, add(f"{LONG}u{n}", -5, undo=f"{LONG}{n}"), mask=m)
    ),
    "wide add": lambda n, m: frame(TEXT, add(f"w{n}", 2), mask=m, wide=8),
    "too large an amount": lambda n, m: frame(TEXT, add(f"b{n}", 10**18), mask=m),
    "spaced add": lambda n, m: frame(TEXT, f'{{"type": "add", "op": "s{n}", "amount": 1}}'.encode(), mask=m),
    "rename": lambda n, m: frame(TEXT, json.dumps({"type": "rename", "name": f"n{n}"}).encode(), mask=m),
    "ping": lambda n, m: frame(PING, f"p{n}".encode(), mask=m),
    "pong": lambda n, m: frame(PONG, b"unasked", mask=m),
    "binary add": lambda n, m: frame(BINARY, add(f"y{n}", 1), mask=m),
    "fragmented add": lambda n, m: (
        frame(TEXT, add(f"f{n}", 1)[:9], fin=False, mask=m) + frame(CONT, add(f"f{n}", 1)[9:], mask=m)
    ),
    "ping inside a message": lambda n, m: (
        frame(TEXT, add(f"g{n}", 1)[:5], fin=False, mask=m)
        + frame(PING, b"inside", mask=m)
        + frame(CONT, add(f"g{n}", 1)[5:], mask=m)
    ),
    "bad text": lambda n, m: frame(TEXT, b'{"type":"add","op":"1","amount":1\xff}', mask=m),
    "too large": lambda n, m: frame(TEXT, b"x" * (MAX + 1), mask=m),
    "claims too large": lambda n, m: frame(TEXT, b"", mask=m, length=MAX + 1),
    "unmasked": lambda n, m: frame(TEXT, add(f"u{n}", 1), masked=False),
    "unknown opcode": lambda n, m: frame(0x3, b"", mask=m),
    "reserved bit": lambda n, m: frame(TEXT, add(f"r{n}", 1), rsv=4, mask=m),
    "long ping": lambda n, m: frame(PING, b"p" * 126, mask=m),
    "continuation first": lambda n, m: frame(CONT, b"{}", mask=m),
    "close": lambda n, m: frame(CLOSE, struct.pack("!H", 1000) + b"bye", mask=m),
}
PLAIN = ("add", "long add", "wide add", "too large an amount")


@dataclass
class Seen:
    """What the client saw after its welcome, in a form both servers must agree on."""

    updates: list[tuple[Any, ...]] = field(default_factory=list)  # in order
    acks: list[tuple[str, int]] = field(default_factory=list)  # in order
    errors: list[tuple[str, str | None]] = field(default_factory=list)  # in any order (timing decides)
    pongs: list[bytes] = field(default_factory=list)
    close: tuple[int, str] | None = None

    def same_as(self, other: Seen) -> bool:
        return (self.updates, self.acks, sorted(self.errors, key=repr), self.pongs, self.close) == (
            other.updates, other.acks, sorted(other.errors, key=repr), other.pongs, other.close
        )  # fmt: skip


class Chopper:
    """Cuts what the server reads from its sockets at the given offsets of the stream (the handshake included)."""

    def __init__(self, cuts: set[int]) -> None:
        self.cuts = cuts
        self.offset = 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        start = 0
        for cut in sorted(c - self.offset for c in self.cuts if self.offset < c < self.offset + len(data)):
            yield data[start:cut]
            start = cut
        yield data[start:]
        self.offset += len(data)


async def run(
    stream: bytes, cuts: set[int], monkeypatch: pytest.MonkeyPatch, *, cut_here: bool, **options: Any
) -> tuple[Seen, int]:
    """``stream`` to a fresh server (``options`` for its config), read in pieces at ``cuts``; what the client
    saw, and the frames served by the session straight from the connection."""
    chopper = Chopper(cuts)
    original = TallyConnection.data_received
    taken = 0
    take = DashboardSession._take

    def counted(session: DashboardSession, text: str) -> bool:
        nonlocal taken
        served = take(session, text)
        taken += served
        return served

    with monkeypatch.context() as patch:
        patch.setattr(TallyConnection, "data_received", lambda c, d: [original(c, p) for p in chopper.pieces(d)])
        patch.setattr(DashboardSession, "_take", counted)
        if not cut_here:
            patch.setattr(TallyConnection, "_may_frame", lambda c: False)
        async with serving(ping_interval=3600, **options) as server:
            seen = await talk(server.port, stream)
    return seen, taken


async def talk(port: int, stream: bytes) -> Seen:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tally.v2\r\n\r\n"
                 .encode())  # fmt: skip
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    hello = {"type": "hello", "name": "framer", "secret": "s" * 16}
    writer.write(frame(TEXT, json.dumps(hello).encode()))
    seen, welcomed = Seen(), False
    async with asyncio.timeout(20):
        while True:
            try:
                head = await reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return seen  # the server closed the socket
            size = head[1] & 0x7F
            if size >= 126:
                size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
            payload = await reader.readexactly(size)
            opcode = head[0] & 0x0F
            if opcode == CLOSE:
                seen.close = (struct.unpack("!H", payload[:2])[0], payload[2:].decode()) if payload else (1005, "")
                writer.write(frame(CLOSE, payload[:2]))
            elif opcode == PONG:
                seen.pongs.append(payload)
            elif opcode == TEXT:
                for message in decode_server_frame(payload.decode()):
                    if isinstance(message, Welcome) and not welcomed:
                        welcomed = True
                        writer.write(stream)
                    elif isinstance(message, Ack):
                        seen.acks.append((message.op, message.seq))
                        if message.op == "end":
                            writer.close()
                            return seen
                    elif isinstance(message, Update):
                        seen.updates.append((message.op, message.seq, message.amount, message.total))
                    elif isinstance(message, Error):
                        seen.errors.append((message.code, message.op))


def stream_of(kinds: list[str], masks: list[bytes]) -> bytes:
    return b"".join(KINDS[kind](n, masks[n % len(masks)]) for n, kind in enumerate(kinds)) + frame(TEXT, add("end", 1))


masks = st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=3)


@pytest.mark.timeout(300)  # 1,000 examples in CI, each through two servers
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), max_size=10), masks=masks, cuts=st.sets(st.integers(0, 2000)))
async def test_a_stream_of_every_kind_of_frame_is_answered_alike(
    kinds: list[str], masks: list[bytes], cuts: set[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the frames and wherever reads end, a server cutting frames itself answers as websockets alone."""
    stream = stream_of(kinds, masks)
    ours, _ = await run(stream, cuts, monkeypatch, cut_here=True)
    theirs, _ = await run(stream, cuts, monkeypatch, cut_here=False)
    assert ours.same_as(theirs), (ours, theirs)


async def test_plain_adds_are_served_from_the_connection_whatever_the_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain adds cut at every byte of their frames are still served straight from the connection, in order."""
    stream = stream_of(["add", "long add", "wide add", "add"], [b"\x00\x00\x00\x00", b"\xff\x10\x20\x30"])
    seen, taken = await run(stream, set(range(2000)), monkeypatch, cut_here=True)
    assert [op for op, _ in seen.acks] == ["a0", f"{LONG}1", f"{LONG}u1", "w2", "end"]
    assert seen.errors == [("invalid_amount", "a3")], "0 is refused by the rule, as ever"
    assert taken == 6 and seen.close is None


async def test_the_comparison_sees_a_frame_served_out_of_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: with the wait check broken (a plain add served while messages before it are still
    queued for the session), the same comparison tells the two servers apart."""
    stream = stream_of(["fragmented add", "add", "spaced add", "add"], [b"\x01\x02\x03\x04"])
    theirs, _ = await run(stream, set(), monkeypatch, cut_here=False)
    monkeypatch.setattr(TallyConnection, "_waiting", lambda c: True)
    ours, _ = await run(stream, set(), monkeypatch, cut_here=True)
    assert not ours.same_as(theirs)


async def test_a_long_frame_in_pieces_is_left_to_websockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame longer than what the connection holds between reads, trickled in small reads, is gathered by
    websockets (never held and copied whole at each read); the plain adds after it are cut here again."""
    held: list[int] = []
    original = TallyConnection._frames

    def watched(connection: TallyConnection, data: bytes) -> None:
        original(connection, data)
        held.append(len(connection._held))

    monkeypatch.setattr(TallyConnection, "_frames", watched)
    long = frame(TEXT, add("L", 4).ljust(4 * HOLD))
    stream = (
        b"".join(frame(TEXT, add(op, 1)) for op in "ab")
        + long
        + b"".join(frame(TEXT, add(op, 1)) for op in ("c", "d", "end"))
    )
    hello_end = 400  # past the handshake and the hello: the stream's reads are cut every 1,000 bytes
    cuts = set(range(hello_end, hello_end + len(stream), 1000))
    options: dict[str, Any] = {"limits": Limits(max_message_bytes=8 * HOLD)}
    ours, taken = await run(stream, cuts, monkeypatch, cut_here=True, **options)
    theirs, _ = await run(stream, cuts, monkeypatch, cut_here=False, **options)
    assert ours.same_as(theirs), (ours, theirs)
    assert [op for op, _ in ours.acks] == ["a", "b", "L", "c", "d", "end"] and ours.close is None
    assert held and max(held) <= HOLD, "never more than HOLD bytes of a frame held between reads"
    assert taken >= 2, "the adds after the long frame were cut here again"


async def test_a_compressed_connection_is_left_to_websockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """With permessage-deflate on, no frame is cut here (a frame's bytes are not its text); adds are served
    by websockets' way and acknowledged."""
    taken = 0
    take = DashboardSession._take

    def counted(session: DashboardSession, text: str) -> bool:
        nonlocal taken
        taken += 1
        return take(session, text)

    monkeypatch.setattr(DashboardSession, "_take", counted)
    async with serving(compression=True) as server:
        connection = await connect(server.url, subprotocols=["tally.v2"], compression="deflate")  # type: ignore[list-item]
        async with Peer(connection) as peer:
            assert connection.response is not None
            assert "permessage-deflate" in connection.response.headers["Sec-WebSocket-Extensions"]
            await peer.hello("zip", "s" * 16)
            await peer.expect(Welcome)
            for n in range(5):
                await peer.send(type="add", op=f"z{n}", amount=1)
            acks: list[str] = []
            while len(acks) < 5:
                message = await peer.receive()
                if isinstance(message, Ack):
                    acks.append(message.op)
    assert acks == [f"z{n}" for n in range(5)]
    assert taken == 0
