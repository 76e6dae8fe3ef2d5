"""``tally-server``: command-line options and logging."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler

from server.app import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, TallyServer, default_db_path
from server.limits import Limits

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tally-server", description="Serve one shared, durable total to Tally dashboards."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind, 0 for any (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--db",
        default=str(default_db_path()),
        help="SQLite file, ':memory:' to keep nothing, or a store URL (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    access = parser.add_argument_group("access")
    access.add_argument(
        "--token",
        default=os.environ.get("TALLY_TOKEN"),
        help="require this shared secret from clients (default: $TALLY_TOKEN; none)",
    )
    access.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this certificate (chain)")
    access.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    access.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page origin allowed to connect, e.g. https://example.com ('*' for any); repeatable. "
        "Clients that send no Origin (dashboards, scripts) are always allowed",
    )
    limits = parser.add_argument_group("limits")
    defaults = Limits()
    limits.add_argument(
        "--max-message-bytes", type=int, default=defaults.max_message_bytes, help="default: %(default)s"
    )
    limits.add_argument(
        "--max-amount", type=int, default=defaults.max_amount, help="largest add, either sign (default: %(default)s)"
    )
    limits.add_argument(
        "--rate", type=float, default=defaults.rate, help="messages per second per connection (default: %(default)s)"
    )
    limits.add_argument(
        "--burst", type=int, default=defaults.burst, help="messages allowed in a burst (default: %(default)s)"
    )
    limits.add_argument("--max-connections", type=int, default=defaults.max_connections, help="default: %(default)s")
    limits.add_argument(
        "--max-write-buffer", type=int, default=defaults.max_write_buffer,
        help="bytes of unsent data before a client that does not read is dropped (default: %(default)s)",
    )  # fmt: skip
    limits.add_argument("--compression", action="store_true", help="enable permessage-deflate (off by default)")
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="exit after this long with no connection (used when a dashboard starts the server)",
    )
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    return args


def _log_handler() -> logging.Handler:
    if sys.stderr.isatty():
        return RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=True)
    # In a log file (an auto-started server's), rich would pad every line to
    # its console width; plain lines with a full timestamp read better there.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[_log_handler()],
    )
    # websockets logs every failed handshake at INFO; keep our one line per event readable.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    config = ServerConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        exit_when_idle=args.exit_when_idle,
        limits=Limits(
            max_message_bytes=args.max_message_bytes,
            max_amount=args.max_amount,
            rate=args.rate,
            burst=args.burst,
            max_connections=args.max_connections,
            max_write_buffer=args.max_write_buffer,
        ),
        token=args.token or None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_origins=tuple(args.allow_origin),
        compression=args.compression,
    )
    try:
        asyncio.run(TallyServer(config).run())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            logging.getLogger("tally.server").error(
                "%s:%d is already in use: is a server running?", args.host, args.port
            )
            return 2
        raise
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
