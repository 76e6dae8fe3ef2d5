"""`tally web` without a browser: what its page fetches, what it passes on, who it serves, how it stops."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tally.server.access import bearer
from tally.server.protocol import Presence, is_loopback_host
from tally.tui.cli import parse_args
from tally.tui.web import dashboard_command
from tests.support import waiting
from tests.support.local import argv_of, user_env
from tests.support.peers import Peer
from tests.support.servers import serving
from tests.web.conftest import StartWeb, WebProcess

TOKEN = "correct horse battery staple"
# Any absolute URL (scheme://host or //host) in HTML, CSS or JavaScript.
ABSOLUTE_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[\w.-]+(?::\d+)?[^\s"'`)<>]*""", re.IGNORECASE)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']""")


@pytest.fixture(scope="module")
def idle_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    """One `tally web` on 127.0.0.1 for the tests that never start a dashboard (its server is never reached)."""
    home = tmp_path_factory.mktemp("web")
    with WebProcess("--url", "ws://127.0.0.1:9", "--no-spawn", env=user_env(home), log=home / "web.log") as web:
        web.wait_serving()
        yield web


class References(HTMLParser):
    """The src and href of every element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        body: bytes = response.read()
        return body


def test_the_page_fetches_nothing_from_the_internet(idle_web: WebProcess) -> None:
    """The page, its scripts, stylesheets, images and fonts all come from `tally web`, and name no other host."""
    local = f"127.0.0.1:{idle_web.port}"
    page = fetch(idle_web.url).decode()
    parser = References()
    parser.feed(page)
    texts, pending, fetched = {idle_web.url: page}, [urljoin(idle_web.url, ref) for ref in parser.found], set()
    while pending:
        url = pending.pop()
        if url in fetched:
            continue
        assert urlsplit(url).netloc == local, f"the page refers to {url}"
        fetched.add(url)
        body = fetch(url)
        assert body, url
        if url.endswith((".css", ".js")):
            texts[url] = CSS_COMMENT.sub("", body.decode()) if url.endswith(".css") else body.decode()
    for url, text in list(texts.items()):  # the inline <style> of the page, and each stylesheet
        for match in CSS_URL.finditer(CSS_COMMENT.sub("", text)):
            ref = urljoin(url, match.group(1) or match.group(2))
            assert urlsplit(ref).netloc == local, f"{url} refers to {ref}"
            if ref not in fetched:
                fetched.add(ref)
                body = fetch(ref)
                assert not ref.endswith(".ttf") or body[:4] == b"\x00\x01\x00\x00", f"{ref} is not a TrueType font"
    assert {Path(urlsplit(url).path).suffix for url in fetched} >= {".css", ".js", ".ttf", ".png"}, fetched
    for url, text in texts.items():
        elsewhere = [ref for ref in ABSOLUTE_URL.findall(text) if urlsplit(ref).netloc not in ("", local)]
        assert not elsewhere, f"{url} names other hosts: {elsewhere}"


async def test_other_sites_cannot_open_a_dashboard(idle_web: WebProcess) -> None:
    """A page of another site may open a WebSocket to 127.0.0.1; `tally web` refuses it before any dashboard starts."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(idle_web.ws_url, origin=Origin("http://evil.example"))
    assert refused.value.response.status_code == 403
    assert idle_web.dashboards() == []
    assert "WARNING" not in idle_web.said  # on 127.0.0.1 it has nothing to warn about


async def test_a_rebinding_page_cannot_open_a_dashboard(idle_web: WebProcess) -> None:
    """DNS rebinding: a site that points its own name at 127.0.0.1 sends a matching Origin and Host; on this machine
    `tally web` answers only to loopback names (and those given with --allow-host), so it is refused."""
    site = f"evil.example:{idle_web.port}"
    assert await handshake_status(idle_web.port, host=site, origin=f"http://{site}") == 403
    assert idle_web.dashboards() == []


async def handshake_status(port: int, *, host: str, origin: str) -> int:
    """The status a WebSocket upgrade to /ws gets with this Host (websockets' client always sends its own)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()


def test_serving_beyond_this_machine_warns_loudly(start_web: StartWeb, tmp_path: Path) -> None:
    """--host 0.0.0.0: a warning on stderr that nobody is authenticated, and that the token comes with it."""
    (tmp_path / "token").write_text(TOKEN)
    web = start_web(
        "--host", "0.0.0.0", "--url", "ws://127.0.0.1:9", "--no-spawn", "--token-file", str(tmp_path / "token")
    )
    web.wait_serving()
    said = web.said
    assert "WARNING" in said and "NO AUTHENTICATION" in said and "Anyone who can reach port" in said, said
    assert "your token" in said and "reverse proxy" in said and TOKEN not in said, said


def test_a_port_already_taken_is_reported(start_web: StartWeb) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web = start_web("--port", str(taken.getsockname()[1]), "--url", "ws://127.0.0.1:9", "--no-spawn")
        assert web.wait(15) == 1
    assert "tally web: cannot serve on 127.0.0.1:" in web.said and "address already in use" in web.said, web.said
    assert "serving" not in web.said


async def open_tab(web: WebProcess) -> ClientConnection:
    """What a browser tab does to get a dashboard: a WebSocket to /ws (no Origin: not a page of another site)."""
    return await connect(f"{web.ws_url}?width=100&height=30", max_queue=None)


async def test_the_token_reaches_each_dashboard_through_its_environment_only(
    start_web: StartWeb, tmp_path: Path
) -> None:
    """With --token-file, the dashboard a tab starts connects to a server that wants the token; `ps` never shows it."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    async with serving(token=TOKEN) as server:
        watcher = await Peer.join(server.url, "watcher", additional_headers={"Authorization": bearer(TOKEN)})
        web = start_web("--url", server.url, "--no-spawn", "--name", "tokened", "--token-file", str(tmp_path / "token"))
        await asyncio.to_thread(web.wait_serving)
        async with await open_tab(web):
            joined = await watcher.next_of(Presence, timeout=15)
            assert (joined.event, joined.client.name) == ("joined", "tokened")
            (dashboard,) = web.dashboards()
            for pid in web.group():  # `tally web`, the shell and the dashboard
                assert TOKEN not in " ".join(argv_of(pid)), argv_of(pid)
            assert f"TALLY_TOKEN={TOKEN}".encode() in web.environment_of(dashboard)
        # Closing the tab quits its dashboard.
        left = await watcher.next_of(Presence, timeout=10)
        assert (left.event, left.client.name) == ("left", "tokened")
        await waiting.until(lambda: web.dashboards() == [], what="the dashboard to exit")
        await watcher.close()


async def test_stopping_it_quits_every_dashboard_at_once(start_web: StartWeb) -> None:
    """SIGTERM (or Ctrl-C) with tabs open: each dashboard quits (the server sees it leave), then it exits 0."""
    async with serving() as server, await Peer.join(server.url, "watcher") as watcher:
        web = start_web("--url", server.url, "--no-spawn", "--name", "tab")
        await asyncio.to_thread(web.wait_serving)
        tabs = [await open_tab(web), await open_tab(web)]
        for _ in tabs:
            joined = await watcher.next_of(Presence, timeout=15)
            assert (joined.event, joined.client.name) == ("joined", "tab")
        assert len(web.dashboards()) == 2
        web.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(web.wait, 5) == 0  # not aiohttp's grace of a minute per tab
        for _ in tabs:
            left = await watcher.next_of(Presence)
            assert left.event == "left"
        assert web.group() == []
        for tab in tabs:
            await tab.wait_closed()


def command_for(*argv: str) -> list[str]:
    return dashboard_command(parse_args(["web", *argv]))


def test_the_dashboard_command_has_the_connection_options_but_never_the_token(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    command = command_for("--url", "wss://a:1,ws://b:2", "--name=-x", "--cafile", str(tmp_path / "ca.pem"),
                          "--token", TOKEN, "--insecure-token", "--no-spawn")  # fmt: skip
    assert command[1:] == ["-P", "-m", "tally.tui", "--name=-x", "--no-spawn", "--url=wss://a:1", "--url=ws://b:2",
                           f"--cafile={tmp_path / 'ca.pem'}", "--insecure-token"]  # fmt: skip
    # With no --url, the dashboard finds (and, if need be, starts) this user's local server itself.
    assert "--url" not in " ".join(command_for("--name", "me")) and "--no-spawn" not in command_for("--name", "me")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("", False), ("192.168.1.2", False), ("example.org", False)],
)  # fmt: skip
def test_which_hosts_stay_on_this_machine(host: str, loopback: bool) -> None:
    """The one loopback rule the web view uses (the protocol package's): names and "" may resolve anywhere."""
    assert is_loopback_host(host) is loopback


def test_web_arguments_parse() -> None:
    args = parse_args(["web", "--url", "ws://127.0.0.1:1"])
    assert isinstance(args, argparse.Namespace) and (args.host, args.port) == ("127.0.0.1", 8000)
