"""Which host names stay on this machine: the one rule both sides use (the server before it listens, the
dashboard before it sends a token, ``tally web`` before it answers a Host header)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True if ``host`` names this machine only: ``localhost`` or a loopback address (IPv4 or IPv6, brackets
    or not). A name that may resolve anywhere, or "" (every interface), is not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
