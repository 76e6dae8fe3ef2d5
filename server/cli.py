"""``tally-server``: command-line options, logging, and one clear line for every known failure."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from tally.server import version
from tally.server.admin import COMMANDS, command_config
from tally.server.app import StoreTimeout, TallyServer
from tally.server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, default_db_path
from tally.server.limits import Limits
from tally.server.logs import Bounded, JsonLines
from tally.server.store.base import StoreError

__all__ = ["main", "parse_args", "read_token"]

log = logging.getLogger("tally.server")


def read_token(value: str | None, path: str | None, parser: argparse.ArgumentParser) -> str | None:
    """The token from --token-file (first line), else --token / $TALLY_TOKEN; None for none."""
    if path is not None:
        try:
            value = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            parser.error(f"--token-file: {exc.strerror}: {path}")
        if not value:
            parser.error(f"--token-file: {path} is empty")
    return value or None


# The commands besides serving, after the usage argparse writes for serving (also in docs/cli.md).
COMMAND_USAGE = """
       tally-server init --db URL [--redis-prefix PREFIX]
       tally-server restore --db URL [--redis-prefix PREFIX] [--witness PATH]
       tally-server check [--db PATH]
       tally-server --version"""

# What the commands do and what an exit status means (also in docs/cli.md).
EXIT_HELP = """
commands:
  (none)    serve (the default)
  init      create a new, empty ledger in a Redis (a server never creates one itself)
  restore   rebuild a ledger the Redis lost entirely, from this machine's witness log
  check     SQLite's full integrity check of the database (the start checks quickly)

exit status: 0 stopped cleanly · 1 the store cannot be served (damaged, rewound, no ledger, no persistence)
· 2 usage, or the address is in use · 3 the store did not answer within --store-timeout
"""


class VersionAction(argparse.Action):
    """``--version``: the installed version."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"tally-server {version()}")
        parser.exit()


def _store_options(parser: argparse.ArgumentParser) -> None:
    """Where the ledger lives, and how the server treats its store."""
    parser.add_argument(
        "--db",
        default=str(default_db_path()),
        help="SQLite file, ':memory:' (or memory://) to keep nothing, or a store URL: sqlite:///path, "
        "redis://host:port/db, rediss://…, unix:///path/redis.sock, redis+sentinel://host:port,…/service "
        "(default: %(default)s)",
    )
    _redis_options(parser)
    parser.add_argument(
        "--witness",
        metavar="PATH",
        help="with a shared store, where this machine keeps its record of the adds its servers acknowledged "
        "(default: witness.db in the user's state directory)",
    )
    parser.add_argument(
        "--store-timeout",
        type=float,
        metavar="SECONDS",
        help="at start, give up (exit 3) if the store does not answer within this long (default: wait for it)",
    )
    parser.add_argument(
        "--cluster-ttl",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with a Redis store, how long a server that stopped beating counts as alive; its clients then "
        "leave everyone's lists (default: %(default)s)",
    )
    parser.add_argument(
        "--accept-ledger-loss",
        action="store_true",
        help="start even though the database went backwards or was replaced (a new epoch begins); with a shared "
        "store, repair a ledger marked rewound that no server remembers, from what the store holds",
    )


def _redis_options(parser: argparse.ArgumentParser) -> None:
    """How a server treats a Redis store."""
    parser.add_argument(
        "--redis-prefix",
        default="tally:",
        metavar="PREFIX",
        help="with a Redis store, the prefix of its keys, so several tallies can share one Redis "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--redis-no-persistence",
        action="store_true",
        help="serve from a Redis that keeps no append-only file (acknowledged adds may be lost if it restarts)",
    )
    parser.add_argument(
        "--redis-replicas",
        type=int,
        default=0,
        metavar="N",
        help="with a Redis store, acknowledge an add only once N replicas have it (Redis WAIT); "
        "otherwise it is refused unavailable (default: 0)",
    )
    parser.add_argument(
        "--redis-replica-timeout",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long an add waits for --redis-replicas (default: %(default)s)",
    )


def _access_options(parser: argparse.ArgumentParser) -> None:
    """Who may connect, and how the server shows itself."""
    access = parser.add_argument_group("access")
    access.add_argument(
        "--token",
        default=os.environ.get("TALLY_TOKEN"),
        help="require this shared secret from clients (default: $TALLY_TOKEN; none). "
        "It shows in `ps`: prefer --token-file",
    )
    access.add_argument("--token-file", metavar="PATH", help="read the shared secret from this file")
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
    access.add_argument("--show-addresses", action="store_true", help="show every client's address to every dashboard")


def _limit_options(parser: argparse.ArgumentParser) -> None:
    """The limits, and the exit of an idle server."""
    limits = parser.add_argument_group("limits")
    for limit in dataclasses.fields(Limits):
        limits.add_argument(
            "--" + limit.name.replace("_", "-"),
            type=type(limit.default),
            default=limit.default,
            metavar="N",
            help=f"{limit.metadata['help']} (default: %(default)s)",
        )
    limits.add_argument("--compression", action="store_true", help="enable permessage-deflate (off by default)")
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="exit after this long with no connection (used when a dashboard starts the server)",
    )
    # argparse's usage for serving (every option, never stale), then the other commands.
    parser.usage = parser.format_usage().removeprefix("usage: ").rstrip() + COMMAND_USAGE


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tally-server",
        description="Serve one shared, durable total to Tally dashboards.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind, 0 for any (default {DEFAULT_PORT})"
    )
    parser.add_argument("--unix", metavar="PATH", help="serve on this Unix socket instead of --host and --port")
    _store_options(parser)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    parser.add_argument(
        "--log-format",
        default="human",
        choices=["human", "json"],
        help="human lines, or one JSON object per line for log collectors (default: human)",
    )
    _access_options(parser)
    _limit_options(parser)
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    args.token = read_token(args.token, args.token_file, parser)
    return args


def _log_handler(log_format: str) -> logging.Handler:
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
    elif sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=True)
    else:
        # In a log file (an auto-started server's), rich would pad every line to
        # its console width; plain lines with a full timestamp read better there.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    handler.addFilter(Bounded())
    return handler


def config_from(args: argparse.Namespace) -> ServerConfig:
    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    return ServerConfig(
        host=args.host,
        port=args.port,
        unix=args.unix,
        db=args.db,
        accept_ledger_loss=args.accept_ledger_loss,
        redis_prefix=args.redis_prefix,
        redis_no_persistence=args.redis_no_persistence,
        redis_replicas=args.redis_replicas,
        redis_replica_timeout=args.redis_replica_timeout,
        witness=args.witness,
        store_timeout=args.store_timeout,
        cluster_ttl=args.cluster_ttl,
        exit_when_idle=args.exit_when_idle,
        limits=limits,
        token=args.token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_origins=tuple(args.allow_origin),
        compression=args.compression,
        show_addresses=args.show_addresses,
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the server creates (database, WAL, sidecar, witness, directories) is its user's alone.
    os.umask(0o077)
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments.pop(0) if arguments and arguments[0] in COMMANDS else None
    args = COMMANDS[command].parser(command).parse_args(arguments) if command else parse_args(arguments)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(message)s", datefmt="[%X]", handlers=[_log_handler(args.log_format)]
    )
    # websockets logs every failed handshake at INFO; keep our one line per event readable.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    # Third-party loggers say the same as our one line, with a traceback: not for expected conditions.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        if command is not None:
            return asyncio.run(COMMANDS[command].run(command_config(args)))
        asyncio.run(TallyServer(config_from(args)).run())
    except StoreTimeout as exc:
        log.error("%s", exc)
        return 3
    except StoreError as exc:
        log.error("%s", exc)
        return 1
    except sqlite3.Error as exc:
        log.error("the database %s cannot be used: %s", args.db, exc)
        return 1
    except ValueError as exc:  # a store URL that names nothing we can open
        log.error("%s", exc)
        return 2
    except OSError as exc:
        where = getattr(args, "unix", None) or f"{getattr(args, 'host', '')}:{getattr(args, 'port', '')}"
        if exc.errno == errno.EADDRINUSE:
            log.error("%s is already in use: is a server running?", where)
            return 2
        if exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL):
            log.error("cannot listen on %s: %s", where, exc.strerror)
            return 2
        if exc.errno == errno.ENOSPC:
            log.error("the disk is full: %s", exc)
            return 1
        raise
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
