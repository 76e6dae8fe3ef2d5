"""An add as the dashboard spells it, read without the JSON parser.

Every add a server receives is decoded, and the validating JSON parser calls
back into Python for each object and number. An add as :func:`encode` writes
it (ids of printable ASCII with nothing to unescape, an amount a JSON integer
of at most 19 digits) is read by one regular expression instead. Anything else
(other spacing or order, escapes, a longer number, another type) is left to
:func:`~tally.server.protocol.decoding.decode_client`'s general path, so the
result, or the error, is the same whichever path a frame takes: a contract
test holds them to it.
"""

from __future__ import annotations

import re

from tally.server.protocol.messages import ID_MAX_CHARS, INT64_MAX, INT64_MIN, Add

__all__ = ["plain_add"]

_ID = rf'"([\x20\x21\x23-\x5b\x5d-\x7e]{{1,{ID_MAX_CHARS}}})"'
_PLAIN_ADD = re.compile(rf'\{{"type":"add","op":{_ID},"amount":(-?(?:0|[1-9][0-9]{{0,18}}))(?:,"undo":{_ID})?\}}')


def plain_add(data: str | bytes, version: int) -> Add | None:
    """The add ``data`` holds, if it is text spelled as the dashboard spells an add; else None (not an error)."""
    match = _PLAIN_ADD.fullmatch(data) if type(data) is str else None
    if match is None:
        return None
    op, amount, undo = match.groups()
    value = int(amount)
    if not INT64_MIN <= value <= INT64_MAX:
        return None  # the general path says why
    return Add(op=op, amount=value, undo=undo if version >= 2 else None)
