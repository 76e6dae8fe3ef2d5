"""``tally``: the dashboard, and the commands for scripts and browsers.

``tally`` opens the dashboard (starting this user's local server if needed);
``tally add``, ``tally watch`` and ``tally status`` do the same for scripts;
``tally web`` serves the dashboard to browsers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tally.server import version
from tally.server.protocol import ID_MAX_CHARS, ProtocolError, check_name
from tally.tui import config
from tally.tui.amount import parse_amount
from tally.tui.local_server import LocalServerError, default_url, ensure_local_server
from tally.tui.urls import check_url, is_loopback, split_urls
from tally.tui.web_tabs import add_tab_options

if TYPE_CHECKING:
    from tally.tui.link import LinkOptions

__all__ = ["main", "parse_args"]

USAGE = """\
%(prog)s [--url URL ...] [--name NAME] [--token TOKEN | --token-file PATH] [--cafile PEM]
             [--insecure-token] [--no-spawn] [--theme THEME]
       %(prog)s add [--op-id ID] [--timeout SECONDS] [--fail-fast] N
       %(prog)s watch [--json] [--fail-fast]
       %(prog)s status [--json] [--timeout SECONDS] [--fail-fast]
       %(prog)s web [--host HOST] [--port PORT] [--allow-host NAME ...]
       %(prog)s --version"""

DESCRIPTION = """\
Watch one shared total change live. Without a command, open the dashboard (starting your own
local server if needed). Every command takes the connection options below too, before or after
its name; `tally COMMAND --help` lists its own."""

EPILOG = """\
exit status: 0 done · 1 could not run here (the local server would not start, the state directory
cannot be written, the port of tally web is taken) · 2 usage · 3 refused (invalid amount, overflow,
an op id already used for another amount…) · 4 no server, or no answer in time (an add's outcome is
then unknown: run it again with the same --op-id) · 5 access denied (token, certificate) · 130 add
or status stopped by ctrl+c (143 by SIGTERM; watch ends with 0)
"""


class VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (it costs every start-up otherwise)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"tally {version()}")
        parser.exit()


def default_name() -> str:
    try:
        return check_name(getpass.getuser())
    except (ProtocolError, OSError, KeyError):
        return "anonymous"


def connection_options(*, on_command: bool) -> argparse.ArgumentParser:
    """--url, --token, --token-file, --cafile, --insecure-token, --no-spawn: the same for every command.

    ``on_command``: the copy each command takes. Its defaults are left out (``SUPPRESS``), so that
    ``tally --url X add 5`` keeps the --url given before the command's name.
    """
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if on_command else None)
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        action="append",
        help="server to connect to: ws://HOST:PORT, wss://… or unix:///path; repeat it (or give a comma list) "
        "for the servers of one cluster, to fail over between them "
        "(default: $TALLY_URL, else url in config.toml, else your own local server, started if needed)",
    )
    group.add_argument(
        "--token",
        default=argparse.SUPPRESS if on_command else os.environ.get("TALLY_TOKEN"),
        help="shared secret the server requires (default: $TALLY_TOKEN)",
    )
    group.add_argument("--token-file", metavar="PATH", help="read the shared secret from this file (not shown in ps)")
    group.add_argument("--cafile", metavar="PEM", help="trust this CA for wss:// (for a private CA)")
    group.add_argument(
        "--insecure-token",
        action="store_true",
        help="send the token over plain ws:// to another machine anyway (anyone on the path can read it)",
    )
    group.add_argument(
        "--no-spawn", action="store_true", help="never start a local server; just keep trying to connect"
    )
    return parser


def name_option(*, on_command: bool) -> argparse.ArgumentParser:
    """--name, for the dashboard and what adds (tally add, tally web): watch and status are never named."""
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if on_command else None)
    parser.add_argument("--name", help="your display name (default: name in config.toml, else your login name)")
    return parser


def usage_error(message: str) -> NoReturn:
    """A value that cannot be used: one line on stderr, exit status 2 (argparse's own errors add the usage)."""
    print(f"tally: error: {message}", file=sys.stderr)
    sys.exit(2)


def check_connection_options(args: argparse.Namespace) -> None:
    """Resolve the URL, the token and the name once, at start: a mistake is a usage error, not a retry loop.

    Each comes from the first of: its flag, its environment variable (URL and
    token), the config file (URL and name), the default.
    """
    path = config.config_path()
    args.preferences = preferences = config.load(path)
    if preferences.problem:
        print(f"tally: ignoring what cannot be read in {preferences.problem}", file=sys.stderr)
    given, source = args.url, "--url"
    if not given and os.environ.get("TALLY_URL"):
        given, source = [os.environ["TALLY_URL"]], "$TALLY_URL"
    if not given and preferences.url:
        given, source = [preferences.url], f"url in {path}"
    args.spawn = not given and not args.no_spawn
    args.urls = split_urls(given or []) or [default_url()]
    for url in args.urls:
        try:
            check_url(url)
        except ValueError as exc:
            usage_error(f"{source}: {exc}")
    args.url = ",".join(args.urls)
    if args.token_file is not None:
        try:
            args.token = Path(args.token_file).expanduser().read_text().strip()
        except OSError as exc:
            usage_error(f"--token-file: {exc.strerror}: {args.token_file}")
    args.token = args.token or None
    for url in args.urls:
        if args.token and url.startswith("ws:") and not is_loopback(url) and not args.insecure_token:
            usage_error(
                f"--url {url} is plain ws:// to another machine: the token would cross the network in clear. "
                "Use wss://, or --insecure-token if this network is trusted"
            )
    name, source = (args.name, "--name") if args.name is not None else (preferences.name, f"name in {path}")
    try:
        args.name = check_name(name) if name is not None else default_name()
    except ProtocolError as exc:
        usage_error(f"{source}: {exc.message}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tally",
        usage=USAGE,
        description=DESCRIPTION,
        parents=[connection_options(on_command=False), name_option(on_command=False)],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument(
        "--theme", default=None, help="the dashboard's colours (default: the last one chosen, kept in config.toml)"
    )
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", prog="tally"))
    args = parser.parse_args(argv)
    check_connection_options(args)
    args.theme = args.theme or args.preferences.theme
    if args.command == "add":
        amount = parse_amount(args.amount)
        if isinstance(amount, str):
            usage_error(f"add: {args.amount!r}: {amount}")
        args.amount = amount
        if args.op_id is not None and not (
            1 <= len(args.op_id) <= ID_MAX_CHARS and args.op_id.isascii() and args.op_id.isprintable()
        ):
            usage_error(f"add: --op-id {args.op_id!r}: an op id is 1 to {ID_MAX_CHARS} printable ASCII characters")
    return args


def fail_fast_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="exit 4 at once when no server listens at the URL (connection refused, no such socket), instead of "
        "retrying until one answers",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """add, watch, status and web, each with the connection options (and --name where it is used)."""
    connection, name = connection_options(on_command=True), name_option(on_command=True)
    add = commands.add_parser(
        "add", parents=[connection, name], help="add a number, for scripts",
        description="Add N to the total and print the total it made, once the server has it.",
    )  # fmt: skip
    add.add_argument("amount", metavar="N", help="a whole number, such as 5, -3 or 1,000 (not 0)")
    add.add_argument(
        "--op-id",
        metavar="ID",
        help="this add's op id (1 to 64 printable ASCII characters, unique for you): after exit status 4, the same "
        "command with the same --op-id adds it only if it did not count (within the server's retention, 24 h by "
        "default). Default: a new one, said on stderr when the outcome is unknown",
    )
    add.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="seconds to wait for the answer (default: 30)")  # fmt: skip
    fail_fast_option(add)
    watch = commands.add_parser(
        "watch", parents=[connection], help="print each update as it happens",
        description="Print each update as it happens, until ctrl+c, SIGTERM or a closed pipe (exit status 0).",
    )  # fmt: skip
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    fail_fast_option(watch)
    status = commands.add_parser(
        "status", parents=[connection], help="print the total and who is online",
        description="Print the total, the count of updates, how many people are online, the server's version "
        "and the ledger.",
    )  # fmt: skip
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="seconds to wait for the server (default: 10)")  # fmt: skip
    fail_fast_option(status)
    web = commands.add_parser(
        "web",
        parents=[connection, name],
        help="serve the dashboard to browsers",
        description="Serve this dashboard to browsers. It has NO AUTHENTICATION of its own: anyone who can open the "
        "page gets a dashboard (with your token). Keep --host 127.0.0.1; share it through an SSH tunnel or an "
        "authenticating reverse proxy.",
    )
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default: 127.0.0.1, this machine only); anything else lets anyone who can "
        "reach the port add, with no login",
    )
    web.add_argument("--port", type=int, default=8000, help="port to serve on (default: 8000)")
    web.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer to besides this machine's loopback names, e.g. the name a reverse proxy "
        "passes on; repeatable (others are refused, against DNS rebinding)",
    )
    add_tab_options(web)


def tls_context(cafile: str | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=cafile) if cafile else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_server: Callable[[], object] | None = None
    if args.spawn:
        # Only ever this user's own local server, at its own address.
        start_server = ensure_local_server
        try:
            if start_server() and args.command is None:
                print(f"started your local tally-server ({args.url})", file=sys.stderr)
        except LocalServerError as exc:
            print(f"tally: {exc}", file=sys.stderr)
            return 1
    try:
        tls = tls_context(args.cafile)
    except (OSError, ssl.SSLError) as exc:
        usage_error(f"--cafile {args.cafile}: {exc}")
    from tally.tui.link import LinkOptions  # here: `tally --help` and `tally web` need no websockets client

    options = LinkOptions(args.urls, args.name, token=args.token, tls=tls, start_server=start_server)
    if args.command in ("add", "watch", "status"):
        from tally.tui import scripting

        if args.command == "add":
            return asyncio.run(
                scripting.add(args.amount, options, within=args.timeout, op=args.op_id, fail_fast=args.fail_fast)
            )
        if args.command == "watch":
            return asyncio.run(scripting.watch(options, as_json=args.json, fail_fast=args.fail_fast))
        return asyncio.run(scripting.status(options, as_json=args.json, within=args.timeout, fail_fast=args.fail_fast))
    if args.command == "web":
        from tally.tui.web import serve_web

        return serve_web(args)
    return run_dashboard(args, options)


def run_dashboard(args: argparse.Namespace, options: LinkOptions) -> int:
    # Imported here so `tally --help` and the script commands do not pay for loading the app.
    from tally.tui.app import make_app
    from tally.tui.journal import journals_for
    from tally.tui.pending import Pending

    journal, leftovers = journals_for(args.url)
    preferences = dataclasses.replace(args.preferences, theme=args.theme, problem=None)
    app = make_app(options, pending=Pending(journal), leftovers=leftovers, preferences=preferences,
                   config=config.config_path())  # fmt: skip
    try:
        app.run()
    finally:
        outbox = app.link.outbox
        outbox.save()
        if outbox.pending.journal is not None:
            outbox.pending.journal.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
