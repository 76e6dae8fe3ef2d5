"""JSON text to messages, with every field validated on the way in.

The text is parsed strictly (:mod:`~tally.server.protocol.json_text`: no
duplicate keys, no NaN). Booleans are not integers, floats are not integers,
integers outside a signed 64-bit range are refused, a number must be finite
and in its range (``1e309`` parses to infinity: refused; a time is Unix seconds
from 0 to the end of year 9999), and unknown fields are ignored so that newer
peers keep working with older ones. Every failure is a
:class:`~server.protocol.errors.ProtocolError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NoReturn, TypeVar

from tally.server.protocol.errors import ErrorCode, ProtocolError
from tally.server.protocol.json_text import TooLarge, parse
from tally.server.protocol.messages import (
    ID_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    MARK_CHARS,
    PAGE_MAX,
    PRESENCE_EVENTS,
    ROLES,
    SECRET_MAX_CHARS,
    SECRET_MIN_CHARS,
    SORT_KEYS,
    STORE_STATES,
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    ClientsPage,
    ClientsRequest,
    Error,
    Hello,
    HistoryPage,
    HistoryPoint,
    HistoryRequest,
    LimitsInfo,
    Online,
    Presence,
    Rename,
    Resume,
    ServerInfo,
    ServerMessage,
    StoreStatus,
    Update,
    Welcome,
)
from tally.server.protocol.plain_add import plain_add

T = TypeVar("T")
# A filter is matched against every name online: keep it short.
FILTER_MAX_CHARS = 64
# Every number (a rate, a retention) within what a float holds exactly as an integer; every time
# (since, at) within Unix seconds 0 to 9999-12-31T23:59:59Z, what a date can show.
NUMBER_MAX = float(2**53)
TIME_MAX = 253_402_300_799.0

__all__ = ["decode_client", "decode_server", "decode_server_frame"]


def _load(data: str | bytes) -> tuple[str, _Fields]:
    return _object(parse(data))


def _object(obj: object) -> tuple[str, _Fields]:
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message needs a string 'type'")
    return kind, _Fields(obj)


class _Fields:
    """Typed, validated access to the fields of one decoded object."""

    def __init__(self, obj: Mapping[str, object], *, op: str | None = None) -> None:
        self.obj = obj
        self.op = op  # attached to every error raised after the op id is known
        self.request: str | None = None  # the same for a request's id, so its asker knows which one failed

    def fail(self, message: str, code: str = ErrorCode.BAD_MESSAGE) -> NoReturn:
        raise ProtocolError(code, message, op=self.op, request=self.request)

    def text(self, key: str, *, code: str = ErrorCode.BAD_MESSAGE) -> str:
        value = self.obj.get(key)
        if not isinstance(value, str):
            self.fail(f"'{key}' must be a string", code)
        return value

    def ident(self, key: str) -> str:
        value = self.text(key)
        if not 1 <= len(value) <= ID_MAX_CHARS or not value.isprintable() or not value.isascii():
            self.fail(f"'{key}' must be 1 to {ID_MAX_CHARS} printable ASCII characters")
        return value

    def mark(self, key: str) -> str:
        """A fingerprint or a seal: MARK_CHARS lowercase hex digits."""
        value = self.text(key)
        if len(value) != MARK_CHARS or value.strip("0123456789abcdef"):
            self.fail(f"'{key}' must be {MARK_CHARS} lowercase hex digits")
        return value

    def optional_mark(self, key: str) -> str:
        return self.mark(key) if key in self.obj else ""

    def optional_ident(self, key: str) -> str | None:
        return None if self.obj.get(key) is None else self.ident(key)

    def int64(self, key: str, *, code: str = ErrorCode.BAD_MESSAGE) -> int:
        value = self.obj.get(key)
        if isinstance(value, TooLarge):
            self.fail(f"'{key}' is outside the signed 64-bit range", code)
        # bool is a subclass of int; true is not 1 here.
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"'{key}' must be an integer", code)
        if not INT64_MIN <= value <= INT64_MAX:
            self.fail(f"'{key}' is outside the signed 64-bit range", code)
        return value

    def number(self, key: str, *, low: float = -NUMBER_MAX, high: float = NUMBER_MAX) -> float:
        """A finite number from ``low`` to ``high`` (an integer literal too long to parse is out of range)."""
        value = self.obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float | TooLarge):
            self.fail(f"'{key}' must be a number")
        if isinstance(value, TooLarge) or not math.isfinite(value) or not low <= value <= high:
            self.fail(f"'{key}' must be a number from {low:.15g} to {high:.15g}")
        return float(value)

    def time(self, key: str) -> float:
        """Unix seconds, from 0 to the end of year 9999."""
        return self.number(key, low=0.0, high=TIME_MAX)

    def flag(self, key: str, default: bool) -> bool:
        value = self.obj.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"'{key}' must be true or false")
        return value

    def count(self, key: str, *, default: int, low: int, high: int) -> int:
        """An optional integer within ``low``..``high``."""
        if key not in self.obj:
            return default
        value = self.int64(key)
        if not low <= value <= high:
            self.fail(f"'{key}' must be from {low} to {high}")
        return value

    def choice(self, key: str, choices: Mapping[str, T], default: str) -> T:
        value = self.obj.get(key, default)
        if not isinstance(value, str) or value not in choices:
            self.fail(f"'{key}' must be one of {', '.join(sorted(choices))}")
        return choices[value]

    def nested(self, key: str) -> _Fields:
        value = self.obj.get(key)
        if not isinstance(value, dict):
            self.fail(f"'{key}' must be an object")
        return _Fields(value)

    def optional_nested(self, key: str) -> _Fields | None:
        return None if self.obj.get(key) is None else self.nested(key)

    def items(self, key: str) -> list[_Fields]:
        value = self.obj.get(key)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(f"'{key}' must be a list of objects")
        return [_Fields(item) for item in value]

    def optional_items(self, key: str) -> list[_Fields] | None:
        return None if self.obj.get(key) is None else self.items(key)


def _secret(fields: _Fields) -> str:
    value = fields.text("secret")
    if not SECRET_MIN_CHARS <= len(value) <= SECRET_MAX_CHARS or not value.isprintable() or not value.isascii():
        fields.fail(f"'secret' must be {SECRET_MIN_CHARS} to {SECRET_MAX_CHARS} printable ASCII characters")
    return value


def _resume(fields: _Fields) -> Resume:
    ledger, epoch, seq = fields.ident("ledger"), fields.int64("epoch"), fields.int64("seq")
    claim = [key for key in ("total", "fingerprint", "seal") if key in fields.obj]
    if not claim:
        return Resume(ledger, epoch, seq)
    if len(claim) != 3:
        fields.fail("'resume' carries total, fingerprint and seal together, or none of them")
    return Resume(ledger, epoch, seq, fields.int64("total"), fields.mark("fingerprint"), fields.mark("seal"))


def _filter(fields: _Fields) -> str:
    value = fields.text("filter") if "filter" in fields.obj else ""
    if len(value) > FILTER_MAX_CHARS:
        fields.fail(f"'filter' must be at most {FILTER_MAX_CHARS} characters")
    return value


def decode_client(data: str | bytes, version: int = 2) -> ClientMessage:
    """Decode a frame sent by a client speaking protocol ``version``, or raise :class:`ProtocolError`."""
    add = plain_add(data, version)  # most frames are adds: most never reach the JSON parser
    if add is not None:
        return add
    kind, fields = _load(data)
    if kind == Hello.TYPE:
        name = fields.text("name", code=ErrorCode.INVALID_NAME)
        if version == 1:
            return Hello(name=name, session=fields.ident("session"))
        resume = fields.optional_nested("resume")
        return Hello(
            name=name,
            secret=_secret(fields),
            role=fields.choice("role", ROLES, "person"),
            resume=None if resume is None else _resume(resume),
            since=None if fields.obj.get("since") is None else fields.number("since"),
        )
    if kind == Add.TYPE:
        fields.op = fields.ident("op")
        amount = fields.int64("amount", code=ErrorCode.INVALID_AMOUNT)
        return Add(op=fields.op, amount=amount, undo=fields.optional_ident("undo") if version >= 2 else None)
    if kind == Rename.TYPE:
        return Rename(name=fields.text("name", code=ErrorCode.INVALID_NAME))
    if version >= 2 and kind == ClientsRequest.TYPE:
        fields.request = fields.ident("id")
        return ClientsRequest(
            id=fields.request,
            offset=fields.count("offset", default=0, low=0, high=INT64_MAX),
            limit=fields.count("limit", default=50, low=1, high=PAGE_MAX),
            sort=fields.choice("sort", SORT_KEYS, "name"),
            descending=fields.flag("descending", False),
            filter=_filter(fields),
        )
    if version >= 2 and kind == HistoryRequest.TYPE:
        fields.request = fields.ident("id")
        return HistoryRequest(
            id=fields.request,
            since=fields.time("since"),
            points=fields.count("points", default=200, low=1, high=PAGE_MAX),
        )
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")


def _client_info(fields: _Fields) -> ClientInfo:
    address = fields.obj.get("address")
    return ClientInfo(
        id=fields.ident("id"),
        name=fields.text("name"),
        # v1 servers always send one; "" means hidden.
        address=fields.text("address") if address not in (None, "") else None,
        since=fields.time("since"),
        added=fields.int64("added"),
        tag=fields.text("tag") if "tag" in fields.obj else "",
    )


def _point(fields: _Fields) -> HistoryPoint:
    return HistoryPoint(seq=fields.int64("seq"), at=fields.time("at"), total=fields.int64("total"))


def _update(fields: _Fields) -> Update:
    return Update(
        seq=fields.int64("seq"),
        total=fields.int64("total"),
        amount=fields.int64("amount"),
        name=fields.text("name"),
        client=fields.ident("client"),
        op=fields.optional_ident("op"),
        at=fields.time("at"),
        tag=fields.text("tag") if "tag" in fields.obj else "",
        undoes=None if fields.obj.get("undoes") is None else fields.int64("undoes"),
        fingerprint=fields.optional_mark("fingerprint"),
        seal=fields.optional_mark("seal"),
    )


def _store(fields: _Fields) -> StoreStatus:
    state = STORE_STATES.get(fields.text("state"))
    if state is None:
        fields.fail("unknown store state")
    return StoreStatus(state=state, reason=fields.text("reason"), since=fields.time("since"))


def _limits(fields: _Fields) -> LimitsInfo:
    return LimitsInfo(
        max_amount=fields.int64("max_amount"),
        rate=fields.number("rate", low=0.0),
        burst=fields.int64("burst"),
        retention=fields.number("retention", low=0.0),
    )


def decode_server_frame(data: str | bytes) -> list[ServerMessage]:
    """Decode a server frame: one message, or a JSON array of messages in order.

    Messages of unknown types are left out: they come from newer servers.
    Anything malformed raises :class:`ProtocolError`. Fields a v1 server does
    not send take their defaults, so one decoder reads both versions.
    """
    parsed = parse(data)
    messages = []
    for item in parsed if isinstance(parsed, list) else [parsed]:
        try:
            messages.append(_server_message(*_object(item)))
        except ProtocolError as exc:
            if exc.code != ErrorCode.UNKNOWN_TYPE:
                raise
    return messages


def decode_server(data: str | bytes) -> ServerMessage:
    """Decode a frame holding exactly one server message, or raise :class:`ProtocolError`.

    A client should ignore ``unknown_type`` errors: they come from newer servers.
    """
    return _server_message(*_load(data))


def _server_message(kind: str, fields: _Fields) -> ServerMessage:
    if kind == Welcome.TYPE:
        server = fields.optional_nested("server")
        limits = fields.optional_nested("limits")
        missed = fields.optional_items("missed")
        store = fields.optional_nested("store")
        clients = tuple(_client_info(item) for item in fields.items("clients"))
        return Welcome(
            you=fields.ident("you"),
            total=fields.int64("total"),
            seq=fields.int64("seq"),
            clients=clients,
            history=tuple(_point(p) for p in fields.items("history")),
            session=fields.text("session") if "session" in fields.obj else "",
            added=fields.int64("added") if "added" in fields.obj else 0,
            missed=None if missed is None else tuple(_update(u) for u in missed),
            ledger=fields.text("ledger") if "ledger" in fields.obj else "",
            epoch=fields.int64("epoch") if "epoch" in fields.obj else 0,
            server=ServerInfo("", "") if server is None else ServerInfo(server.text("version"), server.text("id")),
            limits=None if limits is None else _limits(limits),
            online=fields.int64("online") if "online" in fields.obj else len(clients),
            live=fields.flag("live", True),
            recent=tuple(_update(u) for u in fields.optional_items("recent") or ()),
            fingerprint=fields.optional_mark("fingerprint"),
            seal=fields.optional_mark("seal"),
            store=None if store is None else _store(store),
        )
    if kind == Update.TYPE:
        return _update(fields)
    if kind == Presence.TYPE:
        event = PRESENCE_EVENTS.get(fields.text("event"))
        if event is None:
            fields.fail("unknown presence event")
        return Presence(event=event, client=_client_info(fields.nested("client")))
    if kind == Online.TYPE:
        return Online(count=fields.int64("count"), live=fields.flag("live", True))
    if kind == Ack.TYPE:
        return Ack(op=fields.ident("op"), seq=fields.int64("seq"))
    if kind == Error.TYPE:
        return Error(
            code=fields.text("code"),
            message=fields.text("message"),
            op=fields.optional_ident("op"),
            id=fields.optional_ident("id"),
        )
    if kind == ClientsPage.TYPE:
        return ClientsPage(
            id=fields.ident("id"),
            offset=fields.int64("offset"),
            total=fields.int64("total"),
            clients=tuple(_client_info(item) for item in fields.items("clients")),
        )
    if kind == HistoryPage.TYPE:
        return HistoryPage(id=fields.ident("id"), points=tuple(_point(p) for p in fields.items("points")))
    if kind == StoreStatus.TYPE:
        return _store(fields)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
