"""Server URLs: checked once at start, shown without secrets."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from tally.server.protocol import is_loopback_host

__all__ = ["check_url", "is_loopback", "public_url", "split_urls", "unix_path"]

SCHEMES = ("ws", "wss", "unix")


def check_url(url: str) -> str:
    """``url`` if the dashboard can connect to it, else ``ValueError`` saying why (a usage error).

    Checked once, before anything connects, so that a typo is reported at
    once instead of as a connection that keeps failing.
    """
    parts = urlsplit(url)
    if "://" not in url or not parts.scheme:
        raise ValueError(f"{url!r} has no scheme: write ws://{url} (or wss:// for TLS)")
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{url!r}: the scheme must be ws://, wss:// or unix://, not {parts.scheme}://")
    if parts.scheme == "unix":
        if not parts.path.startswith("/") or parts.netloc:
            raise ValueError(f"{url!r}: write unix:///absolute/path/to/socket")
        return url
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise ValueError(f"{url!r}: the port must be a number from 0 to 65535") from None
    return url


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """One URL, a comma list, or several (each may itself be a comma list), as a list."""
    given = [urls] if isinstance(urls, str) else list(urls)
    return [url.strip() for item in given for url in item.split(",") if url.strip()]


def unix_path(url: str) -> str | None:
    """The socket path of a ``unix://`` URL, None for a network URL."""
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else None


def is_loopback(url: str) -> bool:
    """True if ``url`` cannot leave this machine (a Unix socket, or a loopback host)."""
    parts = urlsplit(url)
    return parts.scheme == "unix" or is_loopback_host(parts.hostname or "")


def public_url(url: str) -> str:
    """``url`` without any user:password part, for showing on screen."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
