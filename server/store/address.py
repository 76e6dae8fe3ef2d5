"""How a store's URL is shown and remembered: never with its password, one name for one Redis.

A Redis URL may carry a password (``redis://:secret@host``). The server writes
the store's URL in its log, in its errors and readiness reasons, and in the
witness (as the place a ledger lived); :func:`shown` is what all of those use,
with the password replaced. :func:`place` names a store for the witness: the
same Redis and prefix give the same place however the URL spells it (``localhost``
or ``127.0.0.1``, with or without the default port and database, the sentinels in
any order), so that a ledger emptied by ``FLUSHALL`` while no server ran is found
again by the next one.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["place", "shown"]

HIDDEN = "***"
_DEFAULT_PORT = {"redis": 6379, "rediss": 6379, "redis+sentinel": 26379}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def shown(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs, errors and the witness."""
    parts = urlsplit(url)
    auth, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in auth:
        return url
    user = auth.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{hosts}"))


def place(url: str, prefix: str) -> str:
    """One name for the store at ``url`` and the keys under ``prefix``, whatever the URL's spelling; no password."""
    if "://" not in url:
        return url  # a SQLite path (or memory://): not shared, never repaired from a witness
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    if scheme == "unix":
        db = query.get("db", ["0"])[0]
        return f"unix://{os.path.realpath(parts.path)}?db={db} {prefix}"
    hosts = sorted(_host(host, _DEFAULT_PORT.get(scheme, 6379)) for host in parts.netloc.rpartition("@")[2].split(","))
    path = [part for part in parts.path.split("/") if part]
    if scheme == "redis+sentinel":
        service, db = path[0] if path else "", path[1] if len(path) > 1 else "0"
        return f"{scheme}://{','.join(hosts)}/{service}/{db} {prefix}"
    db = path[0] if path else query.get("db", ["0"])[0]
    return f"{scheme}://{hosts[0]}/{db} {prefix}"


def _host(host: str, default_port: int) -> str:
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (name.count(":") and not name.startswith("[")):
        name, port = host, ""  # no port, or a bare IPv6 address
    name = name.strip("[]").lower() or "localhost"
    if name in _LOOPBACK:
        name = "localhost"
    return f"{name}:{port or default_port}"
