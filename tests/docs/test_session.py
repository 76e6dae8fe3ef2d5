"""The worked session of docs/protocol.md is what a real server answers today, line by line.

The page's typed lines are replayed against a fresh in-memory server (``docs/session.py``,
which also rewrites the page); each answer must match the page's but for what a server
chooses anew each time: ids, times, the ledger, fingerprints and seals.
"""

from __future__ import annotations

import json
from typing import Any

from docs.session import PAGE, blocks, replay, typed

# What a server chooses anew each run, by field name.
VOLATILE = {"you", "client", "ledger", "at", "since", "fingerprint", "seal", "version"}


def steady(value: Any) -> Any:
    """``value`` with what a server chooses anew each run replaced by a placeholder."""
    if isinstance(value, list):
        return [steady(item) for item in value]
    if not isinstance(value, dict):
        return value
    # A client object's id and the server's id are chosen anew too (request ids are typed on the page).
    chosen = VOLATILE | ({"id"} if "since" in value or "version" in value else set())
    return {key: f"<{key}>" if key in chosen else steady(item) for key, item in value.items()}


async def test_the_worked_session_is_what_the_server_answers() -> None:
    """Every answer on the page, in order, is the server's answer to the line before it."""
    text = PAGE.read_text()
    lines = text.splitlines()
    written = [[line[2:] for line in lines[a:b] if line.startswith("< ")] for a, b in blocks(text)]
    replayed = await replay(typed(text))
    answered = [[answer for _, answers in block for answer in answers] for block in replayed]
    assert [[steady(json.loads(a)) for a in block] for block in answered] == [
        [steady(json.loads(a)) for a in block] for block in written
    ]
