"""Background loops that stop when cancelled, even through a library that turns cancellation into its own error.

redis-py, cancelled in the middle of a command, may raise a connection error
instead of ``CancelledError``; a loop that retries on errors would then catch
it and go on forever, and the server would never finish stopping.
"""

from __future__ import annotations

import asyncio

__all__ = ["stop_if_cancelled"]


def stop_if_cancelled(cause: BaseException) -> None:
    """Re-raise as ``CancelledError`` if the current task was asked to stop while ``cause`` happened."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
