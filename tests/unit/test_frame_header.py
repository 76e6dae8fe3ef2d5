"""The fan-out's hand-built frames, checked against websockets' own frame parser and serializer."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tally.server.fanout import frame_header, text_frame

# Each edge of RFC 6455's three length encodings (7 bits, 16 bits, 64 bits), and well past 64 KiB.
LENGTHS = [0, 1, 125, 126, 65535, 65536, 70_000, 1 << 20]


def parse(data: bytes) -> Frame:
    """One frame, read from ``data`` by websockets' parser as a client reads what a server sends."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the parser wanted more data")


@pytest.mark.parametrize("length", LENGTHS)
def test_a_header_parses_as_one_final_unmasked_text_frame_of_that_length(length: int) -> None:
    """websockets reads the header plus ``length`` bytes as exactly one text frame with that payload."""
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    frame = parse(frame_header(length) + payload)
    assert (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (Opcode.TEXT, True, False, False, False)
    assert frame.data == payload


@pytest.mark.parametrize("length", LENGTHS)
def test_a_header_is_the_one_websockets_would_write(length: int) -> None:
    """Byte for byte what websockets serializes for the same frame: the shortest length encoding."""
    payload = b"x" * length
    serialized = Frame(Opcode.TEXT, payload).serialize(mask=False)
    assert frame_header(length) == serialized[: len(serialized) - length]


@pytest.mark.parametrize(("length", "size"), [(125, 2), (126, 4), (65535, 4), (65536, 10), (1 << 32, 10)])
def test_the_header_grows_at_the_rfc_boundaries(length: int, size: int) -> None:
    """2 bytes up to 125, 4 bytes up to 65,535, 10 bytes beyond (even past 4 GiB)."""
    assert len(frame_header(length)) == size


TEXTS = {
    "empty": "",
    "short": '{"type":"ack","op":"1","seq":2}',
    "multibyte past 64 KiB": "é" * 40_000,
    "batch past 64 KiB": "[" + "1," * 50_000 + "1]",
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_a_text_frame_is_read_back_as_that_text(text: str) -> None:
    """text_frame(text) parses as one final text frame whose payload decodes to exactly ``text``."""
    frame = parse(text_frame(text))
    assert (frame.opcode, frame.fin) == (Opcode.TEXT, True)
    assert bytes(frame.data).decode() == text
