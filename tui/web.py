"""``tally web``: the same dashboard, served to browsers by textual-serve.

textual-serve (the Textual project's own server) runs one ``tally`` dashboard
process per browser tab and relays its screen and keys over a WebSocket. It
has no authentication of its own, so it listens on 127.0.0.1 unless told
otherwise, and says loudly when it is told otherwise. What this module adds:

- the dashboard's command line: the same server, name and CA, never the token,
  which reaches each dashboard through its environment (``ps`` shows command
  lines to every user of the machine);
- a page template of our own: the bundled one fetches its font from Google,
  ours uses the copy textual-serve ships, so the page works offline; its links
  are relative, so it also works through an SSH tunnel or a reverse proxy;
- a refusal of WebSockets opened by other web sites: a browser lets any page
  open ``ws://127.0.0.1:8000/ws`` and would otherwise get a dashboard (and its
  token's rights) for it;
- a prompt stop: Ctrl-C quits every dashboard at once (textual-serve alone
  leaves aiohttp waiting up to a minute for each open tab).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

from tally.server.protocol import is_loopback_host

__all__ = ["dashboard_command", "serve_web"]

TEMPLATES = Path(__file__).with_name("web_templates")

WARNING = """\
tally web: WARNING: serving on {host}, beyond this machine, with NO AUTHENTICATION.
  Anyone who can reach port {port} gets a dashboard, and adds to the total with it{token}.
  To share it, keep the default --host 127.0.0.1 and put an authenticating reverse proxy
  (or an SSH tunnel) in front of it.
"""


def dashboard_command(args: argparse.Namespace) -> list[str]:
    """The ``tally`` that runs for each browser tab: the same connection options, without the token."""
    # -P: not the working directory's modules first; the installed (or PYTHONPATH's) tally.
    command = [sys.executable, "-P", "-m", "tally.tui", f"--name={args.name}"]
    if not args.spawn:  # with no --url it finds (and restarts, if needed) this user's local server itself
        command += ["--no-spawn", *(f"--url={url}" for url in args.urls)]
    if args.cafile:
        command.append(f"--cafile={Path(args.cafile).expanduser().resolve()}")
    if args.insecure_token:
        command.append("--insecure-token")
    return command


def same_origin(request: web.Request) -> bool:
    """False for a WebSocket opened by a page of another site (browsers send its Origin; scripts send none)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def trusted_host(request: web.Request, allowed: frozenset[str] | None) -> bool:
    """False for a Host name we do not serve under (``allowed`` None: any).

    DNS rebinding: a page of another site that points its own name at 127.0.0.1 sends an
    Origin that matches its Host, so the same-origin check alone would let it in. Served on
    this machine only, we answer to loopback names and to those given with --allow-host.
    """
    if allowed is None:
        return True
    name = urlsplit(f"//{request.host}").hostname or ""
    return name in allowed or is_loopback_host(name)


class TallyWebServer(Server):
    """textual-serve's server, with a same-origin check before it starts a dashboard, and a prompt stop."""

    def __init__(self, command: str, *, allowed_hosts: frozenset[str] | None = None, **options: Any) -> None:
        super().__init__(command, **options)
        self.allowed_hosts = allowed_hosts
        self.sessions: set[asyncio.Task[Any]] = set()  # one per browser tab, each running a dashboard
        self.stopping: asyncio.Future[None] | None = None

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not same_origin(request) or not trusted_host(request, self.allowed_hosts):
            raise web.HTTPForbidden(text="tally web: this page belongs to another site")
        session = asyncio.current_task()
        assert session is not None
        self.sessions.add(session)
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions.discard(session)

    def serve(self, debug: bool = False) -> None:
        """textual-serve's, but it says it is serving once the port is its own, on stderr, without a banner."""
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        loop.add_signal_handler(signal.SIGINT, self.request_exit)
        loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        message = f"tally web: serving the dashboard on {self.public_url} (Ctrl-C to stop)"
        web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                    print=lambda _: print(message, file=sys.stderr, flush=True))  # fmt: skip

    async def on_startup(self, app: web.Application) -> None:
        pass  # textual-serve prints its banner here, before it has the port

    def request_exit(self) -> None:
        """Ctrl-C or SIGTERM: quit every dashboard, then stop serving (a second Ctrl-C stops at once).

        The dashboards go first, while their tabs can still be told: once aiohttp starts to shut
        down it stops reading from every connection, and would wait up to a minute for each tab.
        """
        if self.stopping is not None or not self.sessions:
            super().request_exit()  # raises GracefulExit, which stops the event loop
        for session in self.sessions:
            session.cancel()  # textual-serve answers by telling its dashboard to quit, and waits for it
        self.stopping = asyncio.ensure_future(self.exit_when_done(set(self.sessions)))

    async def exit_when_done(self, sessions: set[asyncio.Task[Any]]) -> None:
        await asyncio.wait(sessions, timeout=10)
        asyncio.get_running_loop().call_soon(super().request_exit)


def page_url(host: str, port: int) -> str:
    """Where browsers find the page, for the message at start (the page's own links are relative)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()  # every interface: this machine's name is the likeliest address
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve_web(args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    if not is_loopback_host(host):
        token = "; the dashboards use your token" if args.token else ""
        print(WARNING.format(host=host or "every interface", port=port, token=token), file=sys.stderr, flush=True)
    # textual-serve starts each dashboard with a copy of this environment: the token goes there.
    if args.token:
        os.environ["TALLY_TOKEN"] = args.token
    else:
        os.environ.pop("TALLY_TOKEN", None)
    command = shlex.join(dashboard_command(args))
    # On this machine only, a Host it does not expect is a rebinding page; beyond it, the warning above holds.
    allowed = frozenset(args.allow_host) if is_loopback_host(host) else None
    server = TallyWebServer(command, host=host, port=port, title="Tally", public_url=page_url(host, port),
                            templates_path=TEMPLATES, allowed_hosts=allowed)  # fmt: skip
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"tally web: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
