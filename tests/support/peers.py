"""A real WebSocket peer for tests: a thin tally.v2 (or v1) client that decodes what it receives."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tally.server.protocol import SUBPROTOCOL_V1, SUBPROTOCOL_V2, Online, ServerMessage, Welcome, decode_server_frame

M = TypeVar("M", bound=ServerMessage)


class Peer:
    """A tally client that decodes what it receives; for asserting on the wire."""

    def __init__(self, connection: ClientConnection, version: int = 2) -> None:
        self.connection = connection
        self.version = version
        self.welcome: Welcome | None = None
        self.inbox: deque[ServerMessage] = deque()  # a frame may carry several messages
        # The count online is kept aside (v2 sends it with every change in a small room),
        # so that tests about presence and updates read them in order.
        self.online: Online | None = None

    @classmethod
    async def connect(cls, url: str, *, version: int = 2, **options: Any) -> Peer:
        """Connect with tally.v2 (or ``version=1``); ``options`` go to websockets' ``connect``."""
        subprotocol = Subprotocol(SUBPROTOCOL_V2 if version == 2 else SUBPROTOCOL_V1)
        # max_queue=None: a test peer may leave messages unread; it must still close promptly.
        return cls(await connect(url, subprotocols=[subprotocol], max_queue=None, **options), version)

    @classmethod
    async def join(
        cls, url: str, name: str = "alice", session: str | None = None, *, version: int = 2, **options: Any
    ) -> Peer:
        """Connect, say hello, and keep the welcome. ``session`` is the v2 secret (or the v1 session)."""
        peer = await cls.connect(url, version=version, **options)
        await peer.hello(name, session or f"secret-of-{name}-{id(peer)}")
        peer.welcome = await peer.expect(Welcome)
        return peer

    async def hello(self, name: str, session: str, **fields: Any) -> None:
        if self.version == 1:
            await self.send(type="hello", name=name, session=session, **fields)
        else:
            await self.send(type="hello", name=name, secret=session.ljust(16, "."), **fields)

    @property
    def id(self) -> str:
        assert self.welcome is not None
        return self.welcome.you

    async def send(self, **message: Any) -> None:
        await self.connection.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.connection.send(frame)

    async def receive(self, timeout: float = 5.0) -> ServerMessage:
        while not self.inbox:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
            for message in decode_server_frame(frame):
                if isinstance(message, Online):
                    self.online = message
                else:
                    self.inbox.append(message)
        return self.inbox.popleft()

    async def expect(self, kind: type[M], timeout: float = 5.0) -> M:
        """The very next message, which must be of ``kind``."""
        message = await self.receive(timeout)
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
        return message

    async def next_of(self, kind: type[M], timeout: float = 5.0) -> M:
        """The next message of ``kind``, skipping others (presence, updates of other tests)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive(timeout)
                if isinstance(message, kind):
                    return message

    async def close(self) -> None:
        await self.connection.close()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
