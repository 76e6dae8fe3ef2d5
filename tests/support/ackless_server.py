"""``python -m tests.support.ackless_server``: the real server, whose acks never leave it.

Adds are stored and their updates published to everyone as usual; only the
adder's ``ack`` is dropped. A ``tally add`` against it has counted and never
hears so: the "outcome unknown" (exit status 4) that a script's retry with the
same ``--op-id`` must resolve without counting twice.
"""

from __future__ import annotations

import sys

from websockets.asyncio.server import ServerConnection

from tally.server import cli
from tally.server.fanout import Direct, Fanout
from tally.server.protocol import Ack

_send = Fanout.send


def _send_but_acks(self: Fanout, connection: ServerConnection, message: Direct) -> None:
    if not isinstance(message, Ack):
        _send(self, connection, message)


if __name__ == "__main__":
    setattr(Fanout, "send", _send_but_acks)  # noqa: B010
    sys.exit(cli.main())
