"""Fixtures of the browser view's tests: `tally web` in a process group of its own, and headless Chromium.

textual-serve starts a dashboard (through a shell) for every tab that connects; they
share `tally web`'s process group, and each test kills that whole group at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.support.local import argv_of, free_port, tally_command, user_env

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")  # Debian's packages
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--window-size=1280,800",
    # No name resolves: the page cannot reach the internet, whatever it asks for (and the test sees what it asked).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)  # fmt: skip

# textual.js keeps its xterm.js Terminal to itself; this catches it as it is stored (`this.terminal = …`),
# so that tests read the screen as xterm.js holds it (it draws on a canvas: the DOM has no text).
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    if (value && value.buffer && !window.tallyTerminal) window.tallyTerminal = value;
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
  },
});
"""

StartWeb = Callable[..., "WebProcess"]


class WebProcess:
    """``tally web ARGS`` on a free port of 127.0.0.1 (unless ARGS say otherwise), leading a process group."""

    def __init__(self, *args: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        with log.open("w") as stdout:  # textual-serve's request log, and what dashboards left on stderr
            self.process = subprocess.Popen(
                [tally_command(), "web", "--port", str(self.port), *args],
                env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
        self.stderr: list[str] = []
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            if "serving the dashboard on" in line:
                self._serving.set()
        self._serving.set()  # it exited: wait_serving() says so at once

    def wait_serving(self, timeout: float = 15.0) -> None:
        """Return once it listens; fail with what it said if it exits or takes longer than ``timeout``."""
        if not self._serving.wait(timeout) or self.process.poll() is not None:
            raise AssertionError(f"tally web did not start (exit status {self.process.poll()}):\n{self.said}")

    def wait(self, timeout: float) -> int:
        """Its exit status, once it has exited and all it said is read."""
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    @property
    def said(self) -> str:
        return "".join(self.stderr)

    def group(self) -> list[int]:
        """Every live process of its group: itself, and the shells and dashboards it started."""
        pids = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.name.isdigit():
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) == self.process.pid and fields[0] != "Z":  # fields: state, ppid, pgrp
                        pids.append(int(entry.name))
        return pids

    def dashboards(self) -> list[int]:
        """The dashboards it runs, one per connected tab (one that ends while it is looked at is left out)."""
        found = []
        for pid in self.group():
            with contextlib.suppress(OSError):
                if argv_of(pid)[1:4] == ["-P", "-m", "tally.tui"]:
                    found.append(pid)
        return found

    def environment_of(self, pid: int) -> list[bytes]:
        """The environment process ``pid`` started with, as ``NAME=value`` entries."""
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    def kill(self) -> None:
        """SIGKILL the whole group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self) -> WebProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[StartWeb]:
    """Start ``tally web ARGS`` as this test's local user; every process of its group is killed at the end."""
    started: list[WebProcess] = []

    def start(*args: str) -> WebProcess:
        web = WebProcess(*args, env=user_env(), log=tmp_path / f"web-{len(started)}.log")
        started.append(web)
        return web

    yield start
    for web in started:
        web.kill()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium, with the terminal of the page it opens kept where tests can read it."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them"
        if os.environ.get("TALLY_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    # An explicit driver: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_TERMINAL})
        yield driver
    finally:
        driver.quit()
