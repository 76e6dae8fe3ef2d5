"""A client's byte stream cut into whole WebSocket frames (RFC 6455 §5.2), and the ones websockets would pass on.

Sans-I/O: :class:`~tally.server.connection.TallyConnection` feeds it what the
socket gives and decides what becomes of each frame. A frame is read here only
as far as websockets itself reads it before it has the payload (the opcode, the
mask bit, the length against the size limit); anything websockets would refuse at
that point is reported at once (:data:`REFUSED`), so that the caller hands the
stream to websockets at the same byte and it fails the connection as it always
did. Everything else about a frame (reserved bits, control frames, fragments,
UTF-8) is either the plain case below or left to websockets whole.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from websockets.streams import StreamReader

try:  # websockets' own C version, as its frame parser uses
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (a build without the C extension)
    from websockets.utils import apply_mask

__all__ = ["INCOMPLETE", "REFUSED", "between_frames", "frame_end", "plain_text"]

# The opcodes websockets knows (continuation, text, binary, close, ping, pong).
_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})
INCOMPLETE = -1  # more bytes are needed to know (or to have) the whole frame
REFUSED = -2  # websockets refuses this frame from its header: hand it everything from here
_PLAIN = 0x81  # FIN, no reserved bit, text


def frame_end(data: bytes, start: int, max_size: int | None) -> int:
    """Where the frame (sent by a client, so masked) that begins at ``data[start]`` ends;
    :data:`INCOMPLETE` or :data:`REFUSED` (see the module docstring)."""
    available = len(data) - start
    if available < 2:
        return INCOMPLETE
    first, second = data[start], data[start + 1]
    if first & 0x0F not in _OPCODES or not second & 0x80:
        return REFUSED  # as websockets, from the first two bytes: an invalid opcode, an unmasked client frame
    length = second & 0x7F
    header = 2
    if length == 126:
        if available < 4:
            return INCOMPLETE
        length, header = int.from_bytes(data[start + 2 : start + 4], "big"), 4
    elif length == 127:
        if available < 10:
            return INCOMPLETE
        length, header = int.from_bytes(data[start + 2 : start + 10], "big"), 10
    if max_size is not None and length > max_size:
        return REFUSED  # as websockets, once it has the length: past the size limit
    end = start + header + 4 + length
    return end if end <= len(data) else INCOMPLETE


def plain_text(data: bytes, start: int, end: int) -> str | None:
    """The text of the whole frame ``data[start:end]`` if it is a plain text message (one frame, no reserved
    bit) of valid UTF-8; else None."""
    if data[start] != _PLAIN:
        return None
    length = data[start + 1] & 0x7F
    mask_at = start + (4 if length == 126 else 10 if length == 127 else 2)
    try:
        return apply_mask(data[mask_at + 4 : end], data[mask_at : mask_at + 4]).decode()
    except UnicodeDecodeError:
        return None


_WAITING = StreamReader.at_eof.__code__


def between_frames(parser: Generator[Any, Any, Any]) -> bool:
    """Whether websockets' parser (a generator) waits for the first byte of a frame, holding none of one.

    It then sits in its reader's ``at_eof``; anywhere else (within a frame, or a version of websockets
    built otherwise) the answer is no, and frames are left to websockets as they always were.
    """
    inner: Any = parser
    while getattr(inner, "gi_yieldfrom", None) is not None:
        inner = inner.gi_yieldfrom
    return getattr(inner, "gi_code", None) is _WAITING
