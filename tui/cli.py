"""``tally``: open the dashboard, starting this user's local server first if needed."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from server.protocol import ProtocolError, check_name
from tui.local_server import LocalServerError, default_url, ensure_local_server
from tui.urls import check_url, is_loopback, split_urls

__all__ = ["main", "parse_args"]


def default_name() -> str:
    try:
        return check_name(getpass.getuser())
    except (ProtocolError, OSError, KeyError):
        return "anonymous"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """--url, --token, --token-file, --cafile, --insecure-token: the same for every command that connects."""
    parser.add_argument(
        "--url",
        action="append",
        help="server to connect to: ws://HOST:PORT, wss://… or unix:///path; repeat it (or give a comma list) "
        "for the servers of one cluster, to fail over between them "
        "(default: $TALLY_URL, or your own local server, started if needed)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TALLY_TOKEN"),
        help="shared secret the server requires (default: $TALLY_TOKEN)",
    )
    parser.add_argument("--token-file", metavar="PATH", help="read the shared secret from this file (not shown in ps)")
    parser.add_argument("--cafile", metavar="PEM", help="trust this CA for wss:// (for a private CA)")
    parser.add_argument(
        "--insecure-token",
        action="store_true",
        help="send the token over plain ws:// to another machine anyway (anyone on the path can read it)",
    )


def check_connection_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Resolve the URL and the token once, at start: a mistake is a usage error, not a retry loop."""
    given = args.url or ([os.environ["TALLY_URL"]] if os.environ.get("TALLY_URL") else [])
    args.spawn = not given and not getattr(args, "no_spawn", False)
    args.urls = split_urls(given) or [default_url()]
    for url in args.urls:
        try:
            check_url(url)
        except ValueError as exc:
            parser.error(f"--url: {exc}")
    args.url = ",".join(args.urls)
    if args.token_file is not None:
        try:
            args.token = Path(args.token_file).expanduser().read_text().strip()
        except OSError as exc:
            parser.error(f"--token-file: {exc.strerror}: {args.token_file}")
    args.token = args.token or None
    for url in args.urls:
        if args.token and url.startswith("ws:") and not is_loopback(url) and not args.insecure_token:
            parser.error(
                f"--url {url} is plain ws:// to another machine: the token would cross the network in clear. "
                "Use wss://, or --insecure-token if this network is trusted"
            )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tally", description="Watch one shared total change live.")
    add_connection_options(parser)
    parser.add_argument("--name", default=None, help="your display name (default: your login name)")
    parser.add_argument(
        "--no-spawn", action="store_true", help="never start a local server; just keep trying to connect"
    )
    args = parser.parse_args(argv)
    check_connection_options(args, parser)
    try:
        args.name = check_name(args.name) if args.name is not None else default_name()
    except ProtocolError as exc:
        parser.error(f"--name: {exc.message}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_server = None
    if args.spawn:
        # Only ever this user's own local server, at its own address.
        start_server = ensure_local_server
        try:
            if start_server():
                print(f"started your local tally-server ({args.url})", file=sys.stderr)
        except LocalServerError as exc:
            print(f"tally: {exc}", file=sys.stderr)
            return 1
    # Imported here so `tally --help` does not pay for loading Textual.
    from tui.app import TallyApp
    from tui.journal import journals_for
    from tui.pending import Pending

    try:
        tls = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    except (OSError, ssl.SSLError) as exc:
        print(f"tally: --cafile {args.cafile}: {exc}", file=sys.stderr)
        return 2
    journal, leftovers = journals_for(args.url)
    app = TallyApp(
        args.url,
        args.name,
        pending=Pending(journal),
        leftovers=leftovers,
        start_server=start_server,
        token=args.token,
        tls=tls,
    )
    try:
        app.run()
    finally:
        pending = app.model.pending
        pending.save()
        if pending.journal is not None:
            pending.journal.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
