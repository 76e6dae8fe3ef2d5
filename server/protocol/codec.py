"""The codec: messages to JSON text and back, with every field validated on the way in.

Booleans are not integers, floats are not integers, numbers outside a signed
64-bit range are refused, duplicate keys and NaN are refused, and unknown
fields are ignored so that newer peers keep working with older ones. Every
failure is a :class:`~server.protocol.errors.ProtocolError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import NoReturn

from server.protocol.errors import ErrorCode, ProtocolError
from server.protocol.messages import (
    ID_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    PRESENCE_EVENTS,
    Ack,
    Add,
    ClientInfo,
    ClientMessage,
    Error,
    Hello,
    HistoryPoint,
    Message,
    Presence,
    Rename,
    ServerMessage,
    Update,
    Welcome,
)

__all__ = ["decode_client", "decode_server", "decode_server_frame", "encode", "encode_batch", "encode_welcomes"]


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
            client=fields.ident("client"),
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
