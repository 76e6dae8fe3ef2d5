"""JSON text to Python values, strictly: what the decoders of both sides read messages with.

Duplicate keys, NaN and Infinity are refused, and an integer literal too long to
be worth parsing (past 20 digits: outside any 64-bit range) becomes
:class:`TooLarge` instead of a number Python would be slow to build, or refuse to.
Every failure is a :class:`~tally.server.protocol.errors.ProtocolError`
(``bad_message``). A float literal too large for a float (``1e309``) parses to
infinity: the decoders refuse it as out of range.
"""

from __future__ import annotations

import json
from typing import NoReturn

from tally.server.protocol.errors import ErrorCode, ProtocolError

__all__ = ["TooLarge", "parse"]


class TooLarge:
    """Stands in for an integer literal too long to be worth parsing."""


def _parse_int(literal: str) -> int | TooLarge:
    # Python refuses to parse very long literals (and would be slow to);
    # anything past 20 digits is out of the 64-bit range anyway.
    if len(literal.lstrip("-")) > 20:
        return TooLarge()
    return int(literal)


def _reject_constant(name: str) -> NoReturn:
    raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{name} is not allowed in JSON")


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"duplicate key {key!r}")
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates)


def parse(data: str | bytes) -> object:
    """The JSON value of a text frame, or :class:`ProtocolError` (a binary frame, bad JSON, too deep)."""
    if isinstance(data, bytes):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not supported; send JSON text")
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "JSON is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"not valid JSON: {exc}") from None
