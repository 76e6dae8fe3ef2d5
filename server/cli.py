"""``tally-server``: command-line options and logging."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler

from server.app import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, TallyServer, default_db_path

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
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="exit after this long with no connection (used when a dashboard starts the server)",
    )
    return parser.parse_args(argv)


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
    config = ServerConfig(host=args.host, port=args.port, db=args.db, exit_when_idle=args.exit_when_idle)
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
