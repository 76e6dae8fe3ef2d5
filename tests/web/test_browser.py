"""`tally web` in a real browser: headless Chromium, driven by Selenium, typing as a person would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tally.server.app import TallyServer
from tally.server.protocol import Presence, Update
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tests.support import waiting
from tests.support.dashboard import log_text, table_names, until
from tests.support.faultproxy import FaultProxy
from tests.support.peers import Peer
from tests.support.servers import serving
from tests.web.conftest import StartWeb

SCREENSHOT_FOR_REVIEW = Path("/tmp/tally-web-screenshot.png")  # also kept in the test's tmp_path

SCREEN = """
const terminal = window.tallyTerminal;
if (!terminal) return "";
const buffer = terminal.buffer.active, rows = [];
for (let y = 0; y < terminal.rows; y++) rows.push(buffer.getLine(buffer.viewportY + y)?.translateToString(true) ?? "");
return rows.join("\\n");
"""


def screen(browser: WebDriver) -> str:
    """The terminal's screen in the page, as text, row by row."""
    text: str = browser.execute_script(SCREEN)
    return text


async def until_shown(browser: WebDriver, text: str, timeout: float = 15.0) -> str:
    """The browser's screen once it shows ``text``; fail after ``timeout`` seconds with what it shows."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in (shown := await asyncio.to_thread(screen, browser)):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {text!r} in the browser:\n{shown}")
        await asyncio.sleep(0.1)
    return shown


def requested_urls(browser: WebDriver) -> list[str]:
    """Every URL the page asked for since the last call, from Chromium's network log."""
    urls = []
    for entry in browser.get_log("performance"):  # type: ignore[no-untyped-call]
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.requestWillBeSent":
            urls.append(event["params"]["request"]["url"])
        elif event["method"] == "Network.webSocketCreated":
            urls.append(event["params"]["url"])
    return urls


async def test_an_add_typed_in_the_browser_reaches_the_server_and_a_terminal_dashboard(
    browser: WebDriver, start_web: StartWeb, tmp_path: Path
) -> None:
    """Open the page, wait for the dashboard, type +7 and Enter: the server and another dashboard see it.

    The browser opens the page through a TCP forwarder on another port, as through an SSH tunnel:
    every address the page uses must follow the one the browser used.
    """
    async with serving() as server, await Peer.join(server.url, "watcher") as watcher:
        web = start_web("--url", server.url, "--no-spawn", "--name", "browser")
        await asyncio.to_thread(web.wait_serving)
        tunnel = FaultProxy(web.port)
        page = f"http://127.0.0.1:{await tunnel.start()}/"
        try:
            await use_the_page(browser, page, server, watcher, tmp_path)
        finally:
            await tunnel.close()

    # Offline: everything the page asked for came through the tunnel from `tally web`, the font included.
    urls = await asyncio.to_thread(requested_urls, browser)
    assert any(url.endswith(".ttf") for url in urls), urls
    assert {urlsplit(url).netloc for url in urls} == {urlsplit(page).netloc}, urls
    fonts = await asyncio.to_thread(
        browser.execute_script, "return [...document.fonts].map(font => [font.family, font.status]);"
    )
    assert ['"Roboto Mono"', "loaded"] in fonts or ["Roboto Mono", "loaded"] in fonts, fonts


async def use_the_page(browser: WebDriver, page: str, server: TallyServer, watcher: Peer, tmp_path: Path) -> None:
    """What a person does: open the page, wait for the dashboard, type +7 and Enter; then a screenshot."""
    await asyncio.to_thread(browser.get, page)
    await until_shown(browser, "● connected")
    joined = await watcher.next_of(Presence, timeout=10)
    assert (joined.event, joined.client.name) == ("joined", "browser")

    terminal = make_app(LinkOptions(server.url, "terminal"))
    async with terminal.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "browser" in table_names(terminal), what="the terminal sees the browser")
        await until_shown(browser, "terminal")  # and the browser sees the terminal dashboard

        # Typed into the page's terminal, key by key, where the dashboard has put the cursor.
        keyboard = await asyncio.to_thread(browser.find_element, By.CSS_SELECTOR, ".xterm-helper-textarea")
        await asyncio.to_thread(keyboard.send_keys, "+7", Keys.ENTER)

        update = await watcher.next_of(Update, timeout=10)
        assert (update.name, update.amount, update.total) == ("browser", 7, 7)
        assert server.ledger.total == 7
        await until(pilot, lambda: terminal.dashboard.total.total == 7, what="the terminal dashboard's total")
        assert "browser added +7  → 7" in log_text(terminal)
        shown = await until_shown(browser, "browser (you) added +7  → 7")
        assert "terminal" in shown and "● connected" in shown

        for path in (tmp_path / "browser.png", SCREENSHOT_FOR_REVIEW):
            assert await asyncio.to_thread(browser.save_screenshot, str(path)), f"no screenshot at {path}"


def page_state(browser: WebDriver) -> tuple[str, str]:
    """The classes of the page's body, and the text of the dialog shown when its session ends."""
    state: list[str] = browser.execute_script(
        'return [document.body.className, document.querySelector(".closed-dialog .message")?.innerText ?? ""];'
    )
    return state[0], state[1]


async def test_a_full_server_and_an_idle_tab_say_so_in_the_browser(browser: WebDriver, start_web: StartWeb) -> None:
    """With --max-tabs 1 a window opened while another has the dashboard gets the page 'no room' saying why; the tab
    with the dashboard, left without input, shows 'Session ended' and why, its dashboard quits, and the refused window
    then gets one."""
    async with serving() as server:
        web = start_web("--url", server.url, "--no-spawn", "--max-tabs", "1", "--idle-timeout", "6")
        await asyncio.to_thread(web.wait_serving)
        # The dashboard in a second window; the first one (where the terminal is readable) is refused.
        first = browser.current_window_handle
        await asyncio.to_thread(browser.switch_to.new_window, "tab")
        second = browser.current_window_handle
        await asyncio.to_thread(browser.get, web.url)
        await waiting.until(lambda: len(web.dashboards()) == 1, what="the second window's dashboard")
        await asyncio.to_thread(browser.switch_to.window, first)
        await asyncio.to_thread(browser.get, web.url)
        reason = await asyncio.to_thread(browser.find_element, By.ID, "reason")
        assert "--max-tabs" in reason.text and browser.title == "Tally: no room for another dashboard", reason.text
        await asyncio.to_thread(browser.switch_to.window, second)

        states: list[tuple[str, str]] = []

        async def look() -> None:
            states.append(await asyncio.to_thread(page_state, browser))

        await waiting.until(lambda: "-closed" in states[-1][0] if states else False, poll=look, timeout=30,
                            what="the idle tab closed")  # fmt: skip
        assert "A tab left without input for 6 seconds is closed" in states[-1][1], states[-1]
        await asyncio.to_thread(browser.switch_to.window, first)
        titles: list[str] = []

        async def reload() -> None:
            await asyncio.to_thread(browser.refresh)
            titles.append(browser.title)

        # The place is given back once the idle tab's dashboard has quit and been reaped.
        await waiting.until(lambda: titles[-1:] == ["Tally"], poll=reload, what="the page with a dashboard")
        await until_shown(browser, "● connected")
