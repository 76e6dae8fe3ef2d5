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
  leaves aiohttp waiting up to a minute for each open tab);
- limits for hostile use (:mod:`tally.tui.web_tabs`): dashboards capped per
  client and in total (a page that says so when full), terminal sizes clamped,
  idle tabs closed. The WebSocket of a tab is served here rather than by
  textual-serve's handler, which took any size, logged a traceback with its
  locals for a malformed message, and never closed a tab by itself;
- one process per tab: the dashboard replaces the shell textual-serve starts
  it through (``exec``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from tally.server.protocol import is_loopback_host
from tally.tui.web_tabs import INPUT, Refusal, TabLimits, Tabs, clamp_font, clamp_size

__all__ = ["dashboard_command", "serve_web"]

TEMPLATES = Path(__file__).with_name("web_templates")
IDLE_CLOSE = 4000  # the close code of a tab closed for want of input (4000-4999: the application's own)
log = logging.getLogger("tally.web")

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


class Dashboard(AppService):
    """textual-serve's dashboard process, whose stop also waits for the process to end (killed after 10 s).

    textual-serve's stop returns once the dashboard closes its output; started without a shell in
    between (``exec``), the process may still be ending then, and a tab's place is given back
    (and ``tally web`` may exit) only once it has.
    """

    async def stop(self) -> None:
        await super().stop()
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


class TallyWebServer(Server):
    """textual-serve's server, with the checks and limits of the module docstring, and a prompt stop."""

    def __init__(
        self, command: str, *, allowed_hosts: frozenset[str] | None = None, limits: TabLimits, **options: Any
    ) -> None:
        super().__init__(command, **options)
        self.allowed_hosts = allowed_hosts
        self.tabs = Tabs(limits)
        self.sessions: set[asyncio.Task[Any]] = set()  # one per browser tab, each running a dashboard
        self.stopping: asyncio.Future[None] | None = None

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page; when no tab would be given a dashboard now, a page that says why instead."""
        refusal = self.tabs.refusal(request.remote or "")
        if refusal is not None:
            response = aiohttp_jinja2.render_template(
                "full.html", request, {"reason": refusal.reason}, status=refusal.status.value
            )
            response.headers["Retry-After"] = str(refusal.retry_after)
            return response
        idle = self.tabs.limits.idle_timeout
        font_size = clamp_font(request.query.get("fontsize", ""))
        context = {"application": {"name": self.title}, "font_size": font_size, "idle": _duration(idle) if idle else ""}
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not same_origin(request) or not trusted_host(request, self.allowed_hosts):
            raise web.HTTPForbidden(text="tally web: this page belongs to another site")
        client = request.remote or ""
        refusal = self.tabs.refusal(client)
        if refusal is not None:
            raise _refused(refusal)  # aiohttp's access log has a line for it, as for every request
        session = asyncio.current_task()
        assert session is not None
        self.tabs.opened(client)
        self.sessions.add(session)
        try:
            return await self.serve_tab(request)
        finally:
            self.sessions.discard(session)
            self.tabs.closed(client)  # its dashboard has quit

    async def serve_tab(self, request: web.Request) -> web.WebSocketResponse:
        """One tab: start its dashboard at the size it asked for (clamped), relay until either side ends."""
        websocket = web.WebSocketResponse(heartbeat=15)
        columns, rows = clamp_size(request.query.get("width"), request.query.get("height")) or (80, 24)
        dashboard: Dashboard | None = None

        async def close() -> None:  # when the dashboard quits by itself (q, ctrl+c in the page)
            await websocket.close()

        try:
            await websocket.prepare(request)
            dashboard = Dashboard(
                self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str, close=close,
                download_manager=self.download_manager, debug=self.debug,
            )  # fmt: skip
            await dashboard.start(columns, rows)
            await self.relay(websocket, dashboard)
        except asyncio.CancelledError:
            await websocket.close()
        finally:
            if dashboard is not None:
                await dashboard.stop()  # tells it to quit, and waits until it has
        return websocket

    async def relay(self, websocket: web.WebSocketResponse, dashboard: AppService) -> None:
        """Pass what the tab sends to its dashboard until the tab closes, or has sent no input for too long."""
        idle = self.tabs.limits.idle_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        while True:
            try:
                message = await websocket.receive(timeout=max(deadline - loop.time(), 0.001) if idle else None)
            except TimeoutError:
                text = f"closed after {_duration(idle)} without input"
                log.info("tally web: a tab from %s %s", websocket.get_extra_info("peername"), text)
                await websocket.close(code=IDLE_CLOSE, message=text.encode())
                return
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            kind, data = _envelope(message.data) if message.type is WSMsgType.TEXT else ("", None)
            if kind in INPUT:
                deadline = loop.time() + idle
            await forward(kind, data, websocket, dashboard)

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


async def forward(kind: str, data: object, websocket: web.WebSocketResponse, dashboard: AppService) -> None:
    """One message of textual.js to its dashboard (a ping is answered here); anything malformed is dropped."""
    if kind == "stdin" and isinstance(data, str):
        await dashboard.send_bytes(data.encode("utf-8", "replace"))
    elif kind == "resize" and isinstance(data, dict):
        size = clamp_size(data.get("width"), data.get("height"))
        if size is not None:
            await dashboard.set_terminal_size(*size)
    elif kind == "ping" and isinstance(data, str):
        await websocket.send_json(["pong", data[:64]])
    elif kind == "focus":
        await dashboard.focus()
    elif kind == "blur":
        await dashboard.blur()


def _envelope(text: object) -> tuple[str, object]:
    """textual.js's ``[kind, data]`` from one text message; ("", None) for anything else."""
    try:
        envelope = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return "", None
    if not isinstance(envelope, list) or not envelope or not isinstance(envelope[0], str):
        return "", None
    return envelope[0], envelope[1] if len(envelope) > 1 else None


def _refused(refusal: Refusal) -> web.HTTPException:
    """The WebSocket handshake's answer when the tab gets no dashboard (the page said so already, if it loaded)."""
    error = web.HTTPTooManyRequests if refusal.status == 429 else web.HTTPServiceUnavailable
    return error(text=f"tally web: {refusal.reason}\n", headers={"Retry-After": str(refusal.retry_after)})


def _duration(seconds: float) -> str:
    """``30 minutes``, ``90 seconds``: how long, for people."""
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"


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
    # exec: the dashboard takes the place of the shell textual-serve starts it with (one process a tab, not two).
    command = "exec " + shlex.join(dashboard_command(args))
    # On this machine only, a Host it does not expect is a rebinding page; beyond it, the warning above holds.
    allowed = frozenset(args.allow_host) if is_loopback_host(host) else None
    limits = TabLimits(max_tabs=args.max_tabs, max_tabs_per_client=args.max_tabs_per_client,
                       idle_timeout=args.idle_timeout)  # fmt: skip
    server = TallyWebServer(command, host=host, port=port, title="Tally", public_url=page_url(host, port),
                            templates_path=TEMPLATES, allowed_hosts=allowed, limits=limits)  # fmt: skip
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"tally web: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
