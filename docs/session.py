"""Replay the worked session of docs/protocol.md against a real server, and write what it answers back.

``python docs/session.py`` prints the session as a fresh in-memory server answers it today;
``--write`` puts it into docs/protocol.md. The lines a client types (``>``) are the page's
own; only what the server chose (the ledger's id, a fingerprint and seal to resume from) is
taken from the live session. ``tests/docs/test_session.py`` replays it on every run and
holds the page's answers to the server's, but for ids, times and fingerprints.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tally.server.app import TallyServer
from tally.server.config import ServerConfig

PAGE = Path(__file__).with_name("protocol.md")
# The two blocks of the session: the first connection, and the one that comes back later.
STARTS = ("Lines you type are marked", "Coming back later")


def blocks(text: str) -> list[tuple[int, int]]:
    """Where each session block's lines are: (first line, end) indexes into the page's lines."""
    lines = text.splitlines()
    found = []
    for start in STARTS:
        head = next(i for i, line in enumerate(lines) if line.startswith(start))
        opening = next(i for i in range(head, len(lines)) if lines[i] == "```")
        closing = next(i for i in range(opening + 1, len(lines)) if lines[i] == "```")
        found.append((opening + 1, closing))
    return found


def typed(text: str) -> list[list[str]]:
    """The lines a client types in each block."""
    lines = text.splitlines()
    return [[line[2:] for line in lines[a:b] if line.startswith("> ")] for a, b in blocks(text)]


async def _answers(connection: ClientConnection) -> list[str]:
    """Every frame the server sends until it has said nothing for a moment (a person's pace)."""
    frames: list[str] = []
    while True:
        try:
            frame = await asyncio.wait_for(connection.recv(decode=True), timeout=0.3)
        except TimeoutError:
            return frames
        assert isinstance(frame, str)
        frames.extend(json.dumps(m, separators=(",", ":"), ensure_ascii=False)
                      for m in (json.loads(frame) if frame.startswith("[") else [json.loads(frame)]))  # fmt: skip


async def replay(sessions: list[list[str]]) -> list[list[tuple[str, list[str]]]]:
    """Each typed line with what the server answered it, block by block."""
    seen: dict[str, Any] = {}
    result: list[list[tuple[str, list[str]]]] = []
    async with TallyServer(ServerConfig(port=0, db=":memory:")) as server:
        for lines in sessions:
            block: list[tuple[str, list[str]]] = []
            async with connect(f"ws://127.0.0.1:{server.port}/tally.v2") as connection:
                for line in lines:
                    try:
                        message = json.loads(line)
                    except ValueError:
                        message = {}  # the session types some text that is not JSON on purpose
                    if message.get("type") == "hello" and "resume" in message:
                        message["resume"] = {key: seen[key] for key in message["resume"]}
                        line = json.dumps(message, separators=(",", ":"))
                    await connection.send(line)
                    answers = await _answers(connection)
                    for answer in map(json.loads, answers):
                        if answer["type"] == "welcome":
                            seen.update(ledger=answer["ledger"], epoch=answer["epoch"])
                        elif answer["type"] == "update" and answer["seq"] == 1:
                            seen.update({key: answer[key] for key in ("seq", "total", "fingerprint", "seal")})
                    block.append((line, answers))
            result.append(block)
    return result


def render(text: str, replayed: list[list[tuple[str, list[str]]]]) -> str:
    lines = text.splitlines()
    for (a, b), block in reversed(list(zip(blocks(text), replayed, strict=True))):
        lines[a:b] = [out for line, answers in block for out in (f"> {line}", *(f"< {a}" for a in answers))]
    return "\n".join(lines) + "\n"


def main() -> None:
    text = PAGE.read_text()
    new = render(text, asyncio.run(replay(typed(text))))
    if "--write" in sys.argv:
        PAGE.write_text(new)
    else:
        sys.stdout.write("\n".join(re.findall(r"^[<>] .*$", new, re.MULTILINE)) + "\n")


if __name__ == "__main__":
    main()
