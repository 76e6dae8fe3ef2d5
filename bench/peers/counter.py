"""The bare websockets counter pattern (the library's example/quick/counter.py), on the asyncio API.

Broadcasts the value on every change and the user count on every join and
leave (at most once every $BENCH_COUNT_INTERVAL seconds, if set, as in a large
room); no persistence, no presence list, default settings.
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

USERS: set[ServerConnection] = set()
VALUE = 0
COUNT_INTERVAL = float(os.environ.get("BENCH_COUNT_INTERVAL", "0"))
_count_pending = False


def users_changed() -> None:
    global _count_pending
    if not COUNT_INTERVAL:
        broadcast(USERS, users_event())
    elif not _count_pending:
        _count_pending = True
        asyncio.get_running_loop().call_later(COUNT_INTERVAL, send_users)


def send_users() -> None:
    global _count_pending
    _count_pending = False
    broadcast(USERS, users_event())


def users_event() -> str:
    return json.dumps({"type": "users", "count": len(USERS)})


def value_event() -> str:
    return json.dumps({"type": "value", "value": VALUE})


async def counter(websocket: ServerConnection) -> None:
    global VALUE
    try:
        USERS.add(websocket)
        users_changed()
        await websocket.send(value_event())
        async for message in websocket:
            event = json.loads(message)
            if event["action"] == "minus":
                VALUE -= 1
                broadcast(USERS, value_event())
            elif event["action"] == "plus":
                VALUE += 1
                broadcast(USERS, value_event())
    finally:
        USERS.remove(websocket)
        users_changed()


async def main(port: int) -> None:
    async with serve(counter, "127.0.0.1", port) as server:
        print(f"serving on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
