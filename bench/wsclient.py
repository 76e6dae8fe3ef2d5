"""A lean WebSocket client: raw frames over asyncio.Protocol, for load generation.

No library on the client side, so the load generator measures servers and not
itself: it does the HTTP upgrade by hand, sends masked text frames (with an
all-zero mask, which RFC 6455 allows and which costs nothing to apply), answers
pings, and hands each text payload to a callback with its arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

__all__ = ["WSClient", "connect"]

ZERO_MASK = b"\x00\x00\x00\x00"


def client_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + ZERO_MASK + payload


class WSClient(asyncio.Protocol):
    def __init__(self, host: str, port: int, path: str, subprotocol: str | None,
                 on_text: Callable[[WSClient, bytes, float], None]) -> None:  # fmt: skip
        self.host, self.port, self.path, self.subprotocol = host, port, path, subprotocol
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.state: dict[str, object] = {}  # scenario bookkeeping

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Upgrade: websocket",
            "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
        ]  # fmt: skip
        if self.subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        # Parse from an offset and drop what was used once at the end: deleting each frame
        # from the front would move the rest of a large read again for every small frame.
        buffer, used = self.buffer, 0
        while len(buffer) - used >= 2:
            opcode, length = buffer[used] & 0x0F, buffer[used + 1] & 0x7F
            offset = used + 2
            if length == 126:
                if len(buffer) - used < 4:
                    break
                length, offset = struct.unpack_from("!H", buffer, used + 2)[0], used + 4
            elif length == 127:
                if len(buffer) - used < 10:
                    break
                length, offset = struct.unpack_from("!Q", buffer, used + 2)[0], used + 10
            if len(buffer) < offset + length:
                break
            with memoryview(buffer) as view:  # one copy, not two; released before the del below
                payload = bytes(view[offset : offset + length])
            used = offset + length
            if opcode == 0x1:
                self.on_text(self, payload, now)
            elif opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.send(0x8, payload[:2])
                if self.transport is not None:
                    self.transport.close()
        del buffer[:used]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, payload: bytes) -> None:
        self.send(0x1, payload)


async def connect(host: str, port: int, path: str, subprotocol: str | None,
                  on_text: Callable[[WSClient, bytes, float], None]) -> WSClient:  # fmt: skip
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WSClient(host, port, path, subprotocol, on_text), host, port)
    await client.upgraded
    return client
