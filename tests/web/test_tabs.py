"""`tally web` under hostile use, with raw WebSockets (the browser does not matter here): tabs capped per client
and in total, terminal sizes clamped, idle tabs closed; and the rules themselves, unit by unit."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections import Counter
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tally.tui.cli import parse_args
from tally.tui.web_tabs import MAX_COLUMNS, MAX_ROWS, TabLimits, Tabs, clamp_font, clamp_size
from tests.support import http, waiting
from tests.support.servers import serving
from tests.web.conftest import StartWeb, WebProcess

CURSOR_TO = re.compile(rb"\x1b\[(\d+);(\d+)H")


async def open_tab(
    web: WebProcess, *, source: str = "127.0.0.1", size: str = "width=100&height=30"
) -> ClientConnection:
    """What a browser tab at the address ``source`` does to get a dashboard."""
    sock = socket.create_connection(("127.0.0.1", web.port), source_address=(source, 0))
    return await connect(f"{web.ws_url}?{size}", sock=sock, max_size=None, max_queue=None)


async def tab_status(web: WebProcess, source: str) -> int:
    """The HTTP status of a tab's WebSocket handshake from ``source``: 101, or why it gets no dashboard."""
    try:
        tab = await open_tab(web, source=source)
    except InvalidStatus as refused:
        return refused.response.status_code
    await tab.close()
    return 101


async def page(web: WebProcess, source: str) -> tuple[int, str, str | None]:
    """The page's status, text and Retry-After, fetched from the address ``source``."""
    answer = await http.get(web.port, "/", source=source)
    return answer.status, answer.body, answer.headers.get("Retry-After")


async def test_two_hundred_tabs_from_one_client_start_only_its_share(start_web: StartWeb) -> None:
    """200 tabs opened from one address start --max-tabs-per-client dashboards (the rest get 429, and the page says
    why); another address gets the rest of --max-tabs, then everyone gets 503 and the page 'no room'."""
    async with serving() as server:
        web = start_web("--url", server.url, "--no-spawn", "--max-tabs", "3", "--max-tabs-per-client", "2")
        await asyncio.to_thread(web.wait_serving)
        tabs, refused = [], Counter[int]()
        for _ in range(200):
            try:
                tabs.append(await open_tab(web))
            except InvalidStatus as refusal:
                refused[refusal.response.status_code] += 1
                assert refusal.response.headers["Retry-After"] == "10"
        assert (len(tabs), refused) == (2, {429: 198})
        await waiting.until(lambda: len(web.dashboards()) == 2, what="two dashboards")
        status, text, _ = await page(web, "127.0.0.1")
        assert status == 429 and "--max-tabs-per-client" in text, text
        tabs.append(await open_tab(web, source="127.0.0.2"))  # the last place
        assert await tab_status(web, "127.0.0.3") == 503
        status, text, retry = await page(web, "127.0.0.3")
        assert (status, retry) == (503, "60") and "No room for another dashboard" in text and "--max-tabs" in text
        assert len(web.dashboards()) == 3
        await tabs.pop().close()  # a place is free once its dashboard has quit
        await waiting.until(lambda: len(web.dashboards()) == 2, what="its dashboard gone")
        statuses: list[int] = []

        async def ask() -> None:
            statuses.append((await page(web, "127.0.0.3"))[0])

        # Its place is given back once its process is reaped, a moment after it left /proc.
        await waiting.until(lambda: statuses[-1:] == [200], poll=ask, what="its place given back")
        for tab in tabs:
            await tab.close()


async def screen_positions(tab: ClientConnection, until_row: int) -> tuple[int, int]:
    """The largest row and column the dashboard moves its cursor to, read until it reaches ``until_row``."""
    rows = columns = 0
    while rows < until_row:
        try:
            frame = await asyncio.wait_for(tab.recv(), 10)
        except TimeoutError:
            return rows, columns  # it drew all it had: the caller's assertion says what is missing
        for row, column in CURSOR_TO.findall(frame if isinstance(frame, bytes) else frame.encode()):
            rows, columns = max(rows, int(row)), max(columns, int(column))
    return rows, columns


async def test_a_tab_asking_for_a_huge_terminal_gets_at_most_400_by_150(start_web: StartWeb) -> None:
    """?width=5000&height=5000 starts the dashboard at 400 x 150 (it reached 345 MiB and 5 MB a second); a resize to
    5000 x 5000 grows a tab to 400 x 150 and no further; malformed messages are dropped."""
    async with serving() as server:
        web = start_web("--url", server.url, "--no-spawn")
        await asyncio.to_thread(web.wait_serving)
        async with await open_tab(web, size="width=5000&height=5000") as huge:
            await waiting.until(lambda: len(web.dashboards()) == 1, what="its dashboard")
            (dashboard,) = web.dashboards()
            assert {b"COLUMNS=400", b"ROWS=150"} <= set(web.environment_of(dashboard))
            rows, columns = await screen_positions(huge, MAX_ROWS)
            assert rows == MAX_ROWS and columns <= MAX_COLUMNS
        async with await open_tab(web, size="width=100&height=30") as tab:
            assert (await screen_positions(tab, 30)) <= (30, 100)
            for nonsense in (["resize", {"width": "x", "height": 10}], ["resize", [1, 2]], ["stdin", 5], "{", [], [7]):
                await tab.send(json.dumps(nonsense) if not isinstance(nonsense, str) else nonsense)
            await tab.send(json.dumps(["resize", {"width": 5000, "height": 5000}]))
            rows, columns = await screen_positions(tab, MAX_ROWS)
            assert rows == MAX_ROWS and columns <= MAX_COLUMNS
        assert web.process.poll() is None, web.said


async def test_an_idle_tab_is_closed_and_its_dashboard_quits(start_web: StartWeb) -> None:
    """With --idle-timeout 2, a tab that sends nothing but pings is closed (4000, with the reason) and its dashboard
    quits; a tab that keeps sending input, opened at the same time, is still open then."""
    async with serving() as server:
        web = start_web("--url", server.url, "--no-spawn", "--idle-timeout", "2")
        await asyncio.to_thread(web.wait_serving)
        idle, busy = await open_tab(web), await open_tab(web)
        await waiting.until(lambda: len(web.dashboards()) == 2, what="two dashboards")

        async def keep_typing() -> None:
            while True:
                await busy.send(json.dumps(["resize", {"width": 100, "height": 30}]))
                await idle.send(json.dumps(["ping", "1"]))  # not input: textual.js sends one when it connects
                await asyncio.sleep(0.2)

        typing = asyncio.create_task(keep_typing())
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(idle.recv(), 30)
        typing.cancel()
        assert idle.close_code == 4000 and idle.close_reason == "closed after 2 seconds without input"
        assert busy.close_code is None
        await waiting.until(lambda: len(web.dashboards()) == 1, what="the idle tab's dashboard gone")
        await busy.close()


@pytest.mark.parametrize(
    ("width", "height", "size"),
    [("100", "30", (100, 30)), ("5000", "5000", (MAX_COLUMNS, MAX_ROWS)), ("-5", "0", (20, 5)), ("9" * 5000, "40",
     (MAX_COLUMNS, 40)), ("1e3", "30", None), ("x", "30", None), (None, "30", None), (120, 40, (120, 40)),
     (True, 40, None), (1.5, 40, None), ("٣", "30", None)],
)  # fmt: skip
def test_sizes_are_clamped_and_nonsense_is_no_size(width: object, height: object, size: tuple[int, int] | None) -> None:
    """From a query string or JSON: whole numbers are clamped to 20..400 x 5..150; anything else is no size."""
    assert clamp_size(width, height) == size


def test_the_caps_count_per_client_and_in_total() -> None:
    """A client past its share gets 429, everyone 503 once the total is reached; a closed tab frees its place."""
    tabs = Tabs(TabLimits(max_tabs=3, max_tabs_per_client=2))
    for client in ("a", "a", "b"):
        assert tabs.refusal(client) is None
        tabs.opened(client)
    refused_a, refused_c = tabs.refusal("a"), tabs.refusal("c")
    assert refused_a is not None and refused_a.status == HTTPStatus.TOO_MANY_REQUESTS
    assert refused_c is not None and refused_c.status == HTTPStatus.SERVICE_UNAVAILABLE
    tabs.closed("a")
    assert (tabs.refusal("a"), tabs.refusal("c"), tabs.open) == (None, None, 2)


def test_the_defaults_are_stated_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`tally web --help` states every default, and they are the rules' own."""
    with pytest.raises(SystemExit):
        parse_args(["web", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "(default: 20)" in said and "(default: 5;" in said and "(default: 1800," in said, said
    args = parse_args(["web"])
    assert TabLimits(args.max_tabs, args.max_tabs_per_client, args.idle_timeout) == TabLimits()


@pytest.mark.parametrize(
    "argv", [["--max-tabs", "0"], ["--max-tabs-per-client", "-1"], ["--idle-timeout", "nan"], ["--idle-timeout", "-5"]]
)
def test_impossible_limits_are_refused(argv: list[str]) -> None:
    """No tabs at all, or an idle time that is not a time, is a usage error (exit status 2), not a silent default."""
    with pytest.raises(SystemExit) as stopped:
        parse_args(["web", *argv])
    assert stopped.value.code == 2


@pytest.mark.parametrize(("text", "size"), [("20", 20), ("", 16), ("x", 16), ("1", 8), ("999", 48), ("9" * 500, 16)])
def test_the_pages_font_size_is_taken_within_bounds(text: str, size: int) -> None:
    """?fontsize= as textual-serve took it, within 8 to 48 pixels."""
    assert clamp_font(text) == size
