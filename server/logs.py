"""The server's log: one line per event, for people or (``--log-format json``) for machines, bounded whatever
arrives.

Every line goes through :class:`Bounded`, which lets through at most a few
lines a second of each kind (each message template) and counts the rest, so a
flood of refusals, failed handshakes or accept errors cannot fill a disk.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable

__all__ = ["Bounded", "JsonLines"]


class Bounded(logging.Filter):
    """At most ``burst`` records of one kind at once and ``rate`` a second after; says how many it held back."""

    def __init__(self, *, rate: float = 1.0, burst: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.rate = rate
        self.burst = burst
        self.clock = clock
        # kind -> (tokens, last refill, records held back since the last one let through)
        self._kinds: dict[tuple[str, str], tuple[float, float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg))
        now = self.clock()
        tokens, updated, held = self._kinds.get(kind, (float(self.burst), now, 0))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
        if tokens < 1:
            self._kinds[kind] = (tokens, now, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} ({held:,} more like this not logged)"
        self._kinds[kind] = (tokens - 1, now, 0)
        if len(self._kinds) > 10_000:
            self._kinds.clear()  # templates are few; this only guards against a bug making them many
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, event, client, address, code and the message for people.

    ``event`` is what the line is about (join, leave, refuse, drop, serving…): given with the
    record's ``extra``, or else the first word of its message.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event = getattr(record, "event", None) or (message.split(" ", 1)[0] if message else "")
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": event,
            "client": getattr(record, "client", None),
            "address": getattr(record, "address", None),
            "code": getattr(record, "code", None),
            "message": " ".join(message.split()),
            "logger": record.name,
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
