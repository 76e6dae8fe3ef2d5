"""The Tally server: one shared, durable total broadcast to every dashboard."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "version"]

# The name on PyPI ("tally" was taken); the import package is tally, the commands tally and tally-server.
DISTRIBUTION = "tally-live"


def version() -> str:
    """The installed version, or "unknown" when running from a tree that was never installed."""
    # Imported here: it costs `tally add`, which never asks for the version, about 15 ms of start-up.
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
