"""A TCP proxy on loopback that misbehaves on demand: delay, stall, cut, reset."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class FaultProxy:
    """Forwards 127.0.0.1:<port> to a target, with faults switched on and off by the test."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.pumps: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def stall(self) -> None:
        """Stop forwarding bytes (connections stay open, data waits)."""
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def cut(self) -> None:
        """Close every connection cleanly (FIN both ways)."""
        for client, upstream in list(self.links):
            client.close()
            upstream.close()

    def reset(self) -> None:
        """Abort every connection with a TCP RST."""
        for client, upstream in list(self.links):
            for writer in (client, upstream):
                sock = writer.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.cut()
        for pump in list(self.pumps):
            pump.cancel()
        await asyncio.gather(*self.pumps, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        link = (client_writer, upstream_writer)
        self.links.add(link)
        pumps = [
            asyncio.create_task(self._pump(client_reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, client_writer)),
        ]
        self.pumps.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        self.pumps.difference_update(pumps)
        self.links.discard(link)
        client_writer.close()
        upstream_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)  # the injected fault itself, not a wait
                writer.write(data)
                await writer.drain()
