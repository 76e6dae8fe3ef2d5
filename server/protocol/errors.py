"""The one error type of the protocol, and the codes it carries."""

from __future__ import annotations

from tally.server.protocol.messages import Error

__all__ = ["ErrorCode", "ProtocolError"]


class ErrorCode:
    """The stable codes carried by :class:`Error`. Clients may switch on them."""

    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    HELLO_REQUIRED = "hello_required"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_NAME = "invalid_name"
    OVERFLOW = "overflow"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    INVALID_UNDO = "invalid_undo"


class ProtocolError(Exception):
    """A message that breaks the protocol; it maps one-to-one onto :class:`Error`."""

    def __init__(self, code: str, message: str, *, op: str | None = None, request: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op = op
        self.request = request

    def to_error(self) -> Error:
        return Error(code=self.code, message=self.message, op=self.op, id=self.request)
