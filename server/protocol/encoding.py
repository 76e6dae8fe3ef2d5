"""Messages to JSON text: one frame per message, or several as one array.

The server writes the same bytes to many connections, so what it shares (a
broadcast, the body of a welcome) is encoded once; see :func:`encode_welcomes`.
Decoding, with its validation, is in :mod:`server.protocol.decoding`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring

from tally.server.protocol.messages import (
    Ack,
    Add,
    ClientInfo,
    ClientsPage,
    ClientsRequest,
    Error,
    Hello,
    HistoryPage,
    HistoryPoint,
    HistoryRequest,
    Message,
    Online,
    Presence,
    Rename,
    StoreStatus,
    Update,
    Welcome,
)

__all__ = ["encode", "encode_batch", "encode_welcomes"]


# Made once: json.dumps and json.loads build a new encoder or decoder on every call
# that passes options, which costs more than encoding a small message.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(message: Message, version: int = 2) -> str:
    """Encode one message as the text of a JSON frame, as protocol ``version`` spells it."""
    fast = _FAST.get(type(message))
    if fast is not None:
        text = fast(message, version)
        if text is not None:
            return text
    return _ENCODER.encode(_to_wire(message, version))


# Every add is answered with an ack and published as an update, so these two are written out
# by hand: the same text the encoder gives (a contract test holds them to it), at a fraction
# of the cost of building a dict and walking it. A field of an unusual type (a bool where an
# int goes, a float that is not finite) goes the general way, so the text never differs.
# encode_basestring is the string encoder of ensure_ascii=False, in C.


def _ack_text(message: Message, version: int) -> str | None:
    assert isinstance(message, Ack)
    if type(message.seq) is not int or type(message.op) is not str:
        return None
    return f'{{"type":"ack","op":{encode_basestring(message.op)},"seq":{message.seq}}}'


def _update_text(message: Message, version: int) -> str | None:
    assert isinstance(message, Update)
    u = message
    seq, total, amount, at, name, client, op = u.seq, u.total, u.amount, u.at, u.name, u.client, u.op
    if (type(seq) is not int or type(total) is not int or type(amount) is not int or type(at) is not float
            or type(name) is not str or type(client) is not str
            or (op is not None and type(op) is not str)):  # fmt: skip
        return None
    when = _moment(at)
    if when is None:
        return None
    text = (f'{{"type":"update","seq":{seq},"total":{total},"amount":{amount},"name":{encode_basestring(name)},'
            f'"client":{encode_basestring(client)},"op":{"null" if op is None else encode_basestring(op)},'
            f'"at":{when}')  # fmt: skip
    if version < 2:
        return text + "}"
    tag, undoes, fingerprint, seal = u.tag, u.undoes, u.fingerprint, u.seal
    if type(tag) is not str or (undoes is not None and type(undoes) is not int):
        return None
    undone = "" if undoes is None else f',"undoes":{undoes}'
    if not fingerprint:
        return f'{text},"tag":{encode_basestring(tag)}{undone}}}'
    if type(fingerprint) is not str or type(seal) is not str:
        return None
    text = f'{text},"tag":{encode_basestring(tag)}{undone},"fingerprint":{encode_basestring(fingerprint)}'
    return f'{text},"seal":{encode_basestring(seal)}}}' if seal else text + "}"


# The updates of one commit share their time: its text is made once (a float's repr is the dearest part).
_last_moment: tuple[float, str] = (math.nan, "NaN")


def _moment(at: float) -> str | None:
    """``at`` as JSON writes it; None if it is not finite (the general way then says so)."""
    global _last_moment
    if at == _last_moment[0] and at:  # (0.0 and -0.0 are equal, and written apart)
        return _last_moment[1]
    if not math.isfinite(at):
        return None
    _last_moment = (at, float.__repr__(at))
    return _last_moment[1]


_FAST: dict[type, Callable[[Message, int], str | None]] = {Ack: _ack_text, Update: _update_text}


def _client_info_to_wire(info: ClientInfo, version: int) -> dict[str, object]:
    wire: dict[str, object] = {"id": info.id, "name": info.name}
    if version == 1:
        # v1 always had an address; a server that hides addresses sends an empty one.
        wire["address"] = info.address or ""
    elif info.address is not None:
        wire["address"] = info.address
    wire["since"] = info.since
    wire["added"] = info.added
    if version >= 2:
        wire["tag"] = info.tag
    return wire


def _point_to_wire(point: HistoryPoint) -> dict[str, object]:
    return {"seq": point.seq, "at": point.at, "total": point.total}


def _update_to_wire(update: Update, version: int) -> dict[str, object]:
    wire: dict[str, object] = {
        "type": Update.TYPE,
        "seq": update.seq,
        "total": update.total,
        "amount": update.amount,
        "name": update.name,
        "client": update.client,
        "op": update.op,
        "at": update.at,
    }
    if version >= 2:
        wire["tag"] = update.tag
        if update.undoes is not None:
            wire["undoes"] = update.undoes
        if update.fingerprint:
            wire["fingerprint"] = update.fingerprint
        if update.fingerprint and update.seal:
            wire["seal"] = update.seal
    return wire


def _store_to_wire(status: StoreStatus) -> dict[str, object]:
    return {"state": status.state, "reason": status.reason, "since": status.since}


def _welcome_head(message: Welcome, version: int) -> dict[str, object]:
    """The fields that differ from one joiner to the next."""
    head: dict[str, object] = {"type": Welcome.TYPE, "you": message.you}
    if version >= 2:
        head["session"] = message.session
        head["added"] = message.added
        head["missed"] = None if message.missed is None else [_update_to_wire(u, version) for u in message.missed]
    return head


def _welcome_body(message: Welcome, version: int) -> dict[str, object]:
    """The fields every joiner of one moment shares."""
    body: dict[str, object] = {"total": message.total, "seq": message.seq}
    if version >= 2:
        body["ledger"] = message.ledger
        body["epoch"] = message.epoch
        body["server"] = {"version": message.server.version, "id": message.server.id}
        if message.limits is not None:
            limits = message.limits
            body["limits"] = {
                "max_amount": limits.max_amount,
                "rate": limits.rate,
                "burst": limits.burst,
                "retention": limits.retention,
            }
        body["online"] = message.online
        body["live"] = message.live
        body["recent"] = [_update_to_wire(u, version) for u in message.recent]
        if message.fingerprint:
            body["fingerprint"] = message.fingerprint
            body["seal"] = message.seal
        if message.store is not None:
            body["store"] = _store_to_wire(message.store)
    body["clients"] = [_client_info_to_wire(c, version) for c in message.clients]
    body["history"] = [_point_to_wire(p) for p in message.history]
    return body


def _hello_to_wire(message: Hello, version: int) -> dict[str, object]:
    body: dict[str, object] = {"name": message.name}
    if version == 1:
        body["session"] = message.session
        return body
    body["secret"] = message.secret
    body["role"] = message.role
    if message.resume is not None:
        resume = message.resume
        wire: dict[str, object] = {"ledger": resume.ledger, "epoch": resume.epoch, "seq": resume.seq}
        if resume.total is not None:
            wire |= {"total": resume.total, "fingerprint": resume.fingerprint, "seal": resume.seal}
        body["resume"] = wire
    if message.since is not None:
        body["since"] = message.since
    return body


def _to_wire(message: Message, version: int) -> dict[str, object]:
    body: dict[str, object]
    match message:
        case Hello():
            body = _hello_to_wire(message, version)
        case Add(op=op, amount=amount, undo=undo):
            body = {"op": op, "amount": amount}
            if undo is not None:
                body["undo"] = undo
        case Rename(name=name):
            body = {"name": name}
        case ClientsRequest():
            body = {
                "id": message.id,
                "offset": message.offset,
                "limit": message.limit,
                "sort": message.sort,
                "descending": message.descending,
                "filter": message.filter,
            }
        case HistoryRequest(id=request_id, since=since, points=points):
            body = {"id": request_id, "since": since, "points": points}
        case Welcome():
            return _welcome_head(message, version) | _welcome_body(message, version)
        case Update():
            return _update_to_wire(message, version)
        case Presence(event=event, client=client):
            body = {"event": event, "client": _client_info_to_wire(client, version)}
        case Online(count=count, live=live):
            body = {"count": count, "live": live}
        case Ack(op=op, seq=seq):
            body = {"op": op, "seq": seq}
        case Error(code=code, message=text, op=op, id=request_id):
            body = {"code": code, "message": text, "op": op}
            if version >= 2 and request_id is not None:
                body["id"] = request_id
        case ClientsPage():
            body = {
                "id": message.id,
                "offset": message.offset,
                "total": message.total,
                "clients": [_client_info_to_wire(c, version) for c in message.clients],
            }
        case HistoryPage(id=request_id, points=points):
            body = {"id": request_id, "points": [_point_to_wire(p) for p in points]}
        case StoreStatus():
            body = _store_to_wire(message)
    return {"type": message.TYPE, **body}


def encode_welcomes(shared: Welcome, joiners: Sequence[Welcome], version: int = 2) -> tuple[list[str], str]:
    """Welcomes for ``joiners``, sharing everything but their heads: ``heads[i] + body`` is the i-th.

    A join storm welcomes many clients with the same snapshot. Encoded once,
    that shared body can be written as the same bytes to every joiner; only
    the fields that name the joiner (``you``, its session, what it added, what
    it missed) are encoded for each. ``shared`` gives the body; each joiner
    gives its head.
    """
    body = "," + _ENCODER.encode(_welcome_body(shared, version))[1:]
    heads = [_ENCODER.encode(_welcome_head(joiner, version))[:-1] for joiner in joiners]
    return heads, body


def encode_batch(texts: Sequence[str]) -> str:
    """Several encoded messages as one frame: a JSON array, in order."""
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"
