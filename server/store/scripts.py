"""The Lua scripts of the Redis store (in ``lua/``), read from the installed package."""

from __future__ import annotations

from importlib import resources

__all__ = ["lua_script"]


def lua_script(name: str) -> str:
    """One of the Lua scripts beside this module."""
    return resources.files("tally.server.store").joinpath("lua", name).read_text()
