"""``tally``: open the dashboard, starting a local server first if needed."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Sequence
from functools import partial

from server.protocol import ProtocolError, check_name
from tui.local_server import LocalServerError, ensure_local_server, is_local
from tui.urls import check_url

__all__ = ["DEFAULT_URL", "main", "parse_args"]

DEFAULT_URL = "ws://127.0.0.1:8765"


def default_name() -> str:
    try:
        return check_name(getpass.getuser())
    except (ProtocolError, OSError, KeyError):
        return "anonymous"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tally", description="Watch one shared total change live.")
    parser.add_argument(
        "--url",
        default=os.environ.get("TALLY_URL", DEFAULT_URL),
        help=f"server to connect to (default: $TALLY_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--name", default=None, help="your display name (default: your login name)")
    parser.add_argument(
        "--no-spawn", action="store_true", help="never start a local server; just keep trying to connect"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TALLY_TOKEN"),
        help="shared secret the server requires (default: $TALLY_TOKEN); never shown",
    )
    parser.add_argument("--cafile", metavar="PEM", help="trust this CA for wss:// (for a private CA)")
    args = parser.parse_args(argv)
    try:
        check_url(args.url)
    except ValueError as exc:
        parser.error(f"--url: {exc}")
    try:
        args.name = check_name(args.name) if args.name is not None else default_name()
    except ProtocolError as exc:
        parser.error(f"--name: {exc.message}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    local = None if args.no_spawn else is_local(args.url)
    start_server = None
    if local is not None:
        start_server = partial(ensure_local_server, *local)
        try:
            if start_server():
                print(f"started a local tally-server on {args.url}", file=sys.stderr)
        except LocalServerError as exc:
            print(f"tally: {exc}", file=sys.stderr)
            return 1
    # Imported here so `tally --help` does not pay for loading Textual.
    from tui.app import TallyApp

    tls = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    TallyApp(args.url, args.name, start_server=start_server, token=args.token or None, tls=tls).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
