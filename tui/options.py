"""How the link connects: one set of options for the dashboard, the script commands and the tests."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tally.server.protocol.messages import Role
from tally.tui.inbox import FLUSH_EVERY, FLUSH_INTERVAL, RETRY_LATER, STORE_PROBE
from tally.tui.urls import split_urls

__all__ = ["LinkOptions"]


@dataclass(frozen=True)
class LinkOptions:
    """Where and how to connect; the same for the dashboard, the script commands and the tests.

    ``url`` is one server, or several of one cluster to fail over between (also
    as a comma list); ``name`` is said in the hello. ``token`` is sent as a
    bearer token and never shown; ``tls`` verifies a wss:// server (default: the
    system's trusted CAs); a ping unanswered for ``stall_timeout`` seconds means
    the connection is dead. ``start_server``, if given, is called (in a thread)
    when nothing answers at ``url``. ``once``: stop as soon as no add is pending
    (sending what an earlier dashboard left). The intervals are the link's own
    timers, given here so that tests need not wait on the defaults: ``store_probe``
    is how long adds wait for a store that is away before one is tried again
    (doubling, up to a minute), for a server that never says it is back.
    """

    url: str | Sequence[str]
    name: str = "anonymous"
    token: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    stall_timeout: float = 10.0
    start_server: Callable[[], object] | None = None
    role: Role = "person"
    once: bool = False
    latency_interval: float = 2.0
    flush_interval: float = FLUSH_INTERVAL
    flush_every: float = FLUSH_EVERY
    retry_later: Mapping[str, float] = field(default_factory=lambda: dict(RETRY_LATER))
    store_probe: float = STORE_PROBE

    @property
    def urls(self) -> list[str]:
        return split_urls(self.url)
