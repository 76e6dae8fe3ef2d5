"""The practical floor: a bare asyncio server that writes one pre-built frame to every socket.

It speaks just enough WebSocket for the load generator (handshake, masked client
frames, unmasked server frames) and the counter protocol: on every client
message it bumps the value and writes the same frame bytes to every
connection; on every join it writes the user count. Nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
CONNECTIONS: set[Connection] = set()
VALUE = 0
# Set: the user count goes out at most this often (a large room), not on every join and leave.
COUNT_INTERVAL = float(os.environ.get("BENCH_COUNT_INTERVAL", "0"))
_count_pending = False


def frame(text: str) -> bytes:
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def everyone(data: bytes) -> None:
    for connection in CONNECTIONS:
        connection.transport.write(data)


def users_changed() -> None:
    global _count_pending
    if not COUNT_INTERVAL:
        send_users()
    elif not _count_pending:
        _count_pending = True
        asyncio.get_running_loop().call_later(COUNT_INTERVAL, send_users)


def send_users() -> None:
    global _count_pending
    _count_pending = False
    everyone(frame(f'{{"type":"users","count":{len(CONNECTIONS)}}}'))


class Connection(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()
        self.open = False

    def data_received(self, data: bytes) -> None:
        global VALUE
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            key = next(
                line.split(b":", 1)[1].strip()
                for line in self.buffer[:end].split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            del self.buffer[: end + 4]
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open = True
            CONNECTIONS.add(self)
            self.transport.write(frame(f'{{"type":"value","value":{VALUE}}}'))
            users_changed()
        while len(self.buffer) >= 6:
            n = self.buffer[1] & 0x7F
            offset = 2 if n < 126 else 4 if n == 126 else 10
            if n == 126:
                n = struct.unpack_from("!H", self.buffer, 2)[0]
            elif n == 127:
                n = struct.unpack_from("!Q", self.buffer, 2)[0]
            if len(self.buffer) < offset + 4 + n:
                return
            opcode = self.buffer[0] & 0x0F
            del self.buffer[: offset + 4 + n]  # the load generator's mask is all zeros
            if opcode == 0x1:
                VALUE += 1
                everyone(frame(f'{{"type":"value","value":{VALUE}}}'))
            elif opcode == 0x8:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        CONNECTIONS.discard(self)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Connection, "127.0.0.1", port, backlog=4096)
    print(f"serving on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
