"""Waiting on a condition with a deadline, never on a clock alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["until"]


async def until(
    condition: Callable[[], bool],
    *,
    timeout: float = 10.0,
    what: str = "",
    poll: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Return as soon as ``condition()`` holds; fail after ``timeout`` seconds.

    Between checks ``poll()`` lets everything else run (by default a 10 ms sleep).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        await (poll() if poll is not None else asyncio.sleep(0.01))
