"""One raw HTTP/1.1 GET from a chosen local address: the request sent as written, the answer read to its end."""

from __future__ import annotations

import asyncio
import dataclasses


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


async def get(port: int, target: str, *, source: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Answer:
    """GET ``target`` (query and fragment included, as written) on 127.0.0.1:``port`` from the address ``source``;
    the connection closes after the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        fields = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
        request = f"GET {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        writer.write((request + "\r\n").encode())
        head, _, body = (await asyncio.wait_for(reader.read(-1), 10)).partition(b"\r\n\r\n")
    finally:
        writer.close()
    status_line, *lines = head.decode().split("\r\n")
    return Answer(int(status_line.split()[1]), dict(line.split(": ", 1) for line in lines), body.decode())
