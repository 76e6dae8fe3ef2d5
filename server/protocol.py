"""The Tally wire format: every message, its encoding, and the one error type.

Messages are JSON text frames, each an object with a ``type``. Clients ask for
the WebSocket subprotocol :data:`SUBPROTOCOL`. Every field is validated on the
way in: booleans are not integers, floats are not integers, numbers outside a
signed 64-bit range are refused, and unknown fields are ignored so that newer
peers keep working with older ones.

This module uses the standard library only: the dashboard imports it too.
See ``docs/protocol.md`` for the prose version with a worked session.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NoReturn, TypeAlias

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NAME_MAX_CHARS",
    "SUBPROTOCOL",
    "Ack",
    "Add",
    "ClientInfo",
    "ClientMessage",
    "Error",
    "ErrorCode",
    "Hello",
    "HistoryPoint",
    "Presence",
    "ProtocolError",
    "Rename",
    "ServerMessage",
    "Update",
    "Welcome",
    "check_name",
    "decode_client",
    "decode_server",
    "decode_server_frame",
    "encode",
    "encode_batch",
    "encode_welcomes",
    "plain_text",
]

SUBPROTOCOL = "tally.v1"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NAME_MAX_CHARS = 32
ID_MAX_CHARS = 64


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


class ProtocolError(Exception):
    """A message that breaks the protocol; it maps one-to-one onto :class:`Error`."""

    def __init__(self, code: str, message: str, *, op: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op = op

    def to_error(self) -> Error:
        return Error(code=self.code, message=self.message, op=self.op)


# -- client -> server ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on a connection: who I am and which session I resume.

    ``session`` is chosen by the client and kept across reconnects; op ids
    are deduplicated per session, so a resend after a reconnect is recognised.
    """

    TYPE: ClassVar[str] = "hello"
    name: str
    session: str


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``amount`` to the total. ``op`` is chosen by the client, unique per session."""

    TYPE: ClassVar[str] = "add"
    op: str
    amount: int


@dataclass(frozen=True, slots=True)
class Rename:
    """Change this connection's display name."""

    TYPE: ClassVar[str] = "rename"
    name: str


# -- server -> client ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connected client as everyone sees it. ``since`` is Unix time in seconds."""

    id: str
    name: str
    address: str
    since: float
    added: int


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The total after update ``seq``, applied at Unix time ``at``."""

    seq: int
    at: float
    total: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to ``hello``: your connection id and a full snapshot.

    Every ``update`` sent afterwards has a ``seq`` greater than this ``seq``.
    """

    TYPE: ClassVar[str] = "welcome"
    you: str
    total: int
    seq: int
    clients: tuple[ClientInfo, ...]
    history: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """Sent to everyone for every accepted add, in ``seq`` order with no gaps.

    ``client`` is the connection that added (``None`` once it is gone from
    the server's memory); ``op`` is that client's op id, ``None`` for adds
    from the bare-number legacy path.
    """

    TYPE: ClassVar[str] = "update"
    seq: int
    total: int
    amount: int
    name: str
    client: str | None
    op: str | None
    at: float


PresenceEvent: TypeAlias = Literal["joined", "left", "renamed"]
PRESENCE_EVENTS: dict[str, PresenceEvent] = {"joined": "joined", "left": "left", "renamed": "renamed"}


@dataclass(frozen=True, slots=True)
class Presence:
    """Sent to everyone when a client joins, leaves or renames itself."""

    TYPE: ClassVar[str] = "presence"
    event: PresenceEvent
    client: ClientInfo


@dataclass(frozen=True, slots=True)
class Ack:
    """Sent to the adder once its add is stored: ``seq`` is the update that applied it.

    A resent op id gets the original ack again; it is never applied twice.
    """

    TYPE: ClassVar[str] = "ack"
    op: str
    seq: int


@dataclass(frozen=True, slots=True)
class Error:
    """A refusal. ``code`` is one of :class:`ErrorCode`; nothing was changed."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    op: str | None = None


ClientMessage: TypeAlias = Hello | Add | Rename
ServerMessage: TypeAlias = Welcome | Update | Presence | Ack | Error
Message: TypeAlias = ClientMessage | ServerMessage


# -- names --------------------------------------------------------------------

# Categories that can reorder, hide or fake text on a terminal: controls,
# format characters (bidi overrides, zero-width joiners), separators other
# than a plain space, surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _is_unsafe(char: str) -> bool:
    category = unicodedata.category(char)
    return category in _UNSAFE_CATEGORIES or (category == "Zs" and char != " ")


def check_name(raw: str) -> str:
    """Return the canonical form of a display name, or raise ``invalid_name``.

    Names are NFKC-normalised, trimmed, 1 to 32 characters, and free of
    control, format and bidirectional characters.
    """
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name:
        raise ProtocolError(ErrorCode.INVALID_NAME, "name must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise ProtocolError(ErrorCode.INVALID_NAME, f"name must be at most {NAME_MAX_CHARS} characters")
    if any(_is_unsafe(char) for char in name):
        raise ProtocolError(
            ErrorCode.INVALID_NAME,
            "name must not contain control, format or bidirectional characters",
        )
    if unicodedata.category(name[0]).startswith("M"):
        # A leading combining mark stacks onto whatever the terminal drew before it.
        raise ProtocolError(ErrorCode.INVALID_NAME, "name must not start with a combining mark")
    return name


def plain_text(text: str, *, limit: int = 200) -> str:
    """Make untrusted text safe for a terminal: drop unsafe characters, cap length.

    The dashboard applies this to everything that came over the network,
    whatever the server promised.
    """
    cleaned = "".join(" " if char in "\t\n\r" else char for char in text if char in "\t\n\r" or not _is_unsafe(char))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# -- encoding -----------------------------------------------------------------


# Made once: json.dumps and json.loads build a new encoder or decoder on every call
# that passes options, which costs more than encoding a small message.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(message: Message) -> str:
    """Encode one message as the text of a JSON frame."""
    return _ENCODER.encode(_to_wire(message))


def _client_info_to_wire(info: ClientInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "address": info.address,
        "since": info.since,
        "added": info.added,
    }


def _to_wire(message: Message) -> dict[str, object]:
    match message:
        case Hello(name=name, session=session):
            body: dict[str, object] = {"name": name, "session": session}
        case Add(op=op, amount=amount):
            body = {"op": op, "amount": amount}
        case Rename(name=name):
            body = {"name": name}
        case Welcome():
            body = {
                # First, so that welcomes from one snapshot differ only in their head (encode_welcomes).
                "you": message.you,
                "total": message.total,
                "seq": message.seq,
                "clients": [_client_info_to_wire(c) for c in message.clients],
                "history": [{"seq": p.seq, "at": p.at, "total": p.total} for p in message.history],
            }
        case Update():
            body = {
                "seq": message.seq,
                "total": message.total,
                "amount": message.amount,
                "name": message.name,
                "client": message.client,
                "op": message.op,
                "at": message.at,
            }
        case Presence(event=event, client=client):
            body = {"event": event, "client": _client_info_to_wire(client)}
        case Ack(op=op, seq=seq):
            body = {"op": op, "seq": seq}
        case Error(code=code, message=text, op=op):
            body = {"code": code, "message": text, "op": op}
    return {"type": message.TYPE, **body}


def encode_welcomes(snapshot: Welcome, yous: Sequence[str]) -> tuple[list[str], str]:
    """Welcomes from one snapshot, one per id in ``yous``: ``heads[i] + body`` is the i-th.

    A join storm welcomes many clients with the same list of everyone. Encoded
    once, that shared body can be written as the same bytes to every joiner;
    only the few bytes that name the joiner differ.
    """
    text = encode(dataclasses.replace(snapshot, you=""))
    empty_head = f'{{"type":"{Welcome.TYPE}","you":""'
    assert text.startswith(empty_head), "encode() puts you right after type"
    body = text[len(empty_head) :]
    heads = [f'{{"type":"{Welcome.TYPE}","you":{_ENCODER.encode(you)}' for you in yous]
    return heads, body


def encode_batch(texts: Sequence[str]) -> str:
    """Several encoded messages as one frame: a JSON array, in order."""
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"


# -- decoding -----------------------------------------------------------------


class _TooLarge:
    """Stands in for an integer literal too long to be worth parsing."""


def _parse_int(literal: str) -> int | _TooLarge:
    # Python refuses to parse very long literals (and would be slow to);
    # anything past 20 digits is out of the 64-bit range anyway.
    if len(literal.lstrip("-")) > 20:
        return _TooLarge()
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


def _parse(data: str | bytes) -> object:
    if isinstance(data, bytes):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not supported; send JSON text")
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "JSON is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"not valid JSON: {exc}") from None


def _load(data: str | bytes) -> tuple[str, _Fields]:
    return _object(_parse(data))


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

    def fail(self, message: str, code: str = ErrorCode.BAD_MESSAGE) -> NoReturn:
        raise ProtocolError(code, message, op=self.op)

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

    def optional_ident(self, key: str) -> str | None:
        return None if self.obj.get(key) is None else self.ident(key)

    def int64(self, key: str, *, code: str = ErrorCode.BAD_MESSAGE) -> int:
        value = self.obj.get(key)
        if isinstance(value, _TooLarge):
            self.fail(f"'{key}' is outside the signed 64-bit range", code)
        # bool is a subclass of int; true is not 1 here.
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"'{key}' must be an integer", code)
        if not INT64_MIN <= value <= INT64_MAX:
            self.fail(f"'{key}' is outside the signed 64-bit range", code)
        return value

    def number(self, key: str) -> float:
        value = self.obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"'{key}' must be a number")
        return float(value)

    def nested(self, key: str) -> _Fields:
        value = self.obj.get(key)
        if not isinstance(value, dict):
            self.fail(f"'{key}' must be an object")
        return _Fields(value)

    def items(self, key: str) -> list[_Fields]:
        value = self.obj.get(key)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(f"'{key}' must be a list of objects")
        return [_Fields(item) for item in value]


def decode_client(data: str | bytes) -> ClientMessage:
    """Decode a frame sent by a client, or raise :class:`ProtocolError`."""
    kind, fields = _load(data)
    if kind == Hello.TYPE:
        return Hello(name=fields.text("name", code=ErrorCode.INVALID_NAME), session=fields.ident("session"))
    if kind == Add.TYPE:
        fields.op = fields.ident("op")
        return Add(op=fields.op, amount=fields.int64("amount", code=ErrorCode.INVALID_AMOUNT))
    if kind == Rename.TYPE:
        return Rename(name=fields.text("name", code=ErrorCode.INVALID_NAME))
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")


def _client_info(fields: _Fields) -> ClientInfo:
    return ClientInfo(
        id=fields.ident("id"),
        name=fields.text("name"),
        address=fields.text("address"),
        since=fields.number("since"),
        added=fields.int64("added"),
    )


def decode_server_frame(data: str | bytes) -> list[ServerMessage]:
    """Decode a server frame: one message, or a JSON array of messages in order.

    Messages of unknown types are left out: they come from newer servers.
    Anything malformed raises :class:`ProtocolError`.
    """
    parsed = _parse(data)
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
        return Welcome(
            you=fields.ident("you"),
            total=fields.int64("total"),
            seq=fields.int64("seq"),
            clients=tuple(_client_info(item) for item in fields.items("clients")),
            history=tuple(
                HistoryPoint(seq=p.int64("seq"), at=p.number("at"), total=p.int64("total"))
                for p in fields.items("history")
            ),
        )
    if kind == Update.TYPE:
        return Update(
            seq=fields.int64("seq"),
            total=fields.int64("total"),
            amount=fields.int64("amount"),
            name=fields.text("name"),
            client=fields.optional_ident("client"),
            op=fields.optional_ident("op"),
            at=fields.number("at"),
        )
    if kind == Presence.TYPE:
        event = PRESENCE_EVENTS.get(fields.text("event"))
        if event is None:
            fields.fail("unknown presence event")
        return Presence(event=event, client=_client_info(fields.nested("client")))
    if kind == Ack.TYPE:
        return Ack(op=fields.ident("op"), seq=fields.int64("seq"))
    if kind == Error.TYPE:
        return Error(code=fields.text("code"), message=fields.text("message"), op=fields.optional_ident("op"))
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
