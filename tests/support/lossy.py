"""The dashboard's own link, with acks lost on the way in: for crash tests."""

from __future__ import annotations

from collections.abc import Sequence

from tally.server.protocol import Ack, ServerMessage
from tally.tui.link import Link, LinkOptions
from tally.tui.messages import Connected, Event, ServerRefused

__all__ = ["LossyLink"]


class LossyLink(Link):
    """The dashboard's own link, losing every ``drop_every``-th ack on the way in."""

    def __init__(self, url: str | Sequence[str], name: str, *, drop_every: int) -> None:
        super().__init__(LinkOptions(url, name), self._posted)
        self.drop_every = drop_every
        self.acks_seen = 0
        self.acks_dropped = 0
        self.connections = 0  # welcomes received: each one resends everything pending
        self.lost: set[str] = set()  # ops whose ack was dropped since the last welcome
        self.refused: list[str] = []  # refusals for good: none may happen to a well-behaved dashboard

    def _posted(self, message: Event) -> None:
        if isinstance(message, Connected):
            self.connections += 1
            self.lost.clear()
        elif isinstance(message, ServerRefused) and message.error.code not in ("unavailable", "rate_limited"):
            self.refused.append(message.error.code)

    def answered_since(self, connections: int) -> bool:
        """True once a welcome came after ``connections`` and every add it resent has been answered."""
        return self.connections > connections and {add.op for add in self.pending} <= self.lost

    def _receive(self, message: ServerMessage) -> None:
        if isinstance(message, Ack) and self.drop_every:
            self.acks_seen += 1
            if self.acks_seen % self.drop_every == 0:
                self.acks_dropped += 1
                self.lost.add(message.op)
                return  # lost: the add stays pending and is resent after the next reconnect
        super()._receive(message)
