"""The store's own thread: calls run there one at a time, in order, and their results or errors come back."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from tally.server.store.worker import Worker


async def test_calls_run_in_order_on_one_thread_of_their_own() -> None:
    """Every call runs on the worker's thread, after the calls made before it; results come back to each caller."""
    worker = Worker("tally-test")
    seen: list[tuple[int, str]] = []

    def call(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 2

    results = await asyncio.gather(*(worker.run(functools.partial(call, n)) for n in range(50)))
    worker.close()
    assert results == [n * 2 for n in range(50)]
    assert seen == [(n, "tally-test") for n in range(50)]


async def test_an_error_reaches_its_caller_and_the_thread_goes_on() -> None:
    """A call that raises hands the exception to its caller; the next call still runs."""
    worker = Worker("tally-test")

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await worker.run(fail)
    assert await worker.run(lambda: "next") == "next"
    worker.close()


async def test_a_call_cancelled_before_it_starts_is_skipped() -> None:
    """As an executor does: a caller that gave up before its call began leaves nothing done."""
    worker = Worker("tally-test")
    release = threading.Event()
    ran: list[str] = []
    busy = asyncio.ensure_future(worker.run(release.wait))
    waiting = asyncio.ensure_future(worker.run(lambda: ran.append("cancelled one")))
    await asyncio.sleep(0)  # both calls are queued
    waiting.cancel()
    release.set()
    assert await busy is True
    await worker.run(lambda: ran.append("later one"))
    assert ran == ["later one"]
    worker.close()


async def test_close_lets_the_calls_made_finish_and_refuses_new_ones() -> None:
    """Closing waits for what was asked before; asking after is an error, not a hang."""
    worker = Worker("tally-test")
    done = asyncio.ensure_future(worker.run(lambda: "made before"))
    await asyncio.sleep(0)
    worker.close()
    assert await done == "made before"
    with pytest.raises(RuntimeError, match="closed"):
        await worker.run(lambda: None)
