"""One thread of its own for blocking work (SQLite, fsync), fed by a queue: each call wakes the event loop once.

``loop.run_in_executor`` on a one-thread pool does the same with more machinery per
call (a lock, a work item, a thread-safe future chained to the loop's): the store's
writer makes one call a batch, but every add waits on it. Calls run in the order
they are made, one at a time; a call whose caller was cancelled before it started
is skipped, as an executor skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")

_Call = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class Worker:
    def __init__(self, name: str) -> None:
        """``name`` names the thread (it shows in py-spy and in thread dumps)."""
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on the thread, after every call made before it."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if self._thread is None:
            # A daemon: a process that exits without closing its store must not wait on an idle thread.
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((work, future, loop))
        return await future

    def close(self) -> None:
        """Let the calls already made run, then end the thread (blocking until it has)."""
        self._closed = True
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            work, future, loop = call
            if future.cancelled():
                continue
            try:
                result = work()
            except BaseException as exc:  # handed to the caller, whatever it is
                _reply(loop, future, None, exc)
            else:
                _reply(loop, future, result, None)


def _reply(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: BaseException | None
           ) -> None:  # fmt: skip
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, future, result, exc)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
