"""The web tabs scenario: what a `tally web` tab costs in memory, at the smallest and the largest terminal size.

`tally web` starts one dashboard process per browser tab. Here a tab is what a
browser does (a WebSocket to `/ws` asking for a size), opened from its own
loopback address so that the per-client cap does not turn it away; each tab is
read until its dashboard says it is connected and a moment more. Reported: the
resident memory (RSS) of one tab's dashboard, at 80x24 and at the clamped
largest size asked for with 5000x5000, and `tally web`'s own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.swarm import Options, Swarm, rss_kib

STYLES = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
SETTLE = 2.0  # seconds a connected dashboard is read before its memory is (its first screens drawn)


async def tabs(swarm: Swarm, options: Options) -> dict[str, Any]:
    """``options.clients`` tabs at each size; the median RSS of their dashboards, in MiB."""
    with tempfile.TemporaryDirectory() as home:
        web, port = _start_web(swarm.port, home, options.clients)
        try:
            if not await _serving(port):
                return {"valid": False, "why": "tally web did not listen"}
            small = await _measure(web, port, options.clients, "width=80&height=24")
            large = await _measure(web, port, options.clients, "width=5000&height=5000")
            own = rss_kib(web.pid) / 1024
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(web.pid, signal.SIGKILL)
            web.wait()
    if small is None or large is None:
        return {"valid": False, "why": "a tab's dashboard did not start"}
    return {"valid": True, "tab_mib_80x24": small, "tab_mib_largest": large, "web_mib": own}


async def _measure(web: subprocess.Popen[bytes], port: int, count: int, size: str) -> float | None:
    """Open ``count`` tabs asking for ``size``, wait until each has drawn, and read their dashboards' RSS."""
    opened = [await _open_tab(port, f"127.0.0.{10 + n}", size) for n in range(count)]
    try:
        await asyncio.gather(*(_until_drawn(tab) for tab in opened))
        dashboards = _dashboards(web.pid)
        if len(dashboards) != count:
            return None
        return statistics.median(rss_kib(pid) for pid in dashboards) / 1024
    finally:
        for tab in opened:
            await tab.close()
        for _ in range(200):  # the places come back once the dashboards have quit
            if not _dashboards(web.pid):
                break
            await asyncio.sleep(0.05)


async def _open_tab(port: int, source: str, size: str) -> ClientConnection:
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    return await connect(f"ws://127.0.0.1:{port}/ws?{size}", sock=sock, max_size=None, max_queue=None)


async def _until_drawn(tab: ClientConnection) -> None:
    """Read what the dashboard draws until it says it is connected, then for SETTLE seconds."""
    drawn = b""
    async with asyncio.timeout(120):
        while b"connected" not in drawn:  # the status line, once its styles are taken out
            drawn = STYLES.sub(b"", drawn[-200:] + await tab.recv(decode=False))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE):  # it never goes quiet: the cursor blinks
            while True:
                await tab.recv()


def _start_web(server_port: int, home: str, tabs: int) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/config", "XDG_STATE_HOME": f"{home}/state",
           "XDG_DATA_HOME": f"{home}/data", "XDG_RUNTIME_DIR": home}  # fmt: skip
    argv = [sys.executable, "-P", "-m", "tally.tui", "web", "--port", str(port),
            "--url", f"ws://127.0.0.1:{server_port}", "--no-spawn", "--max-tabs", str(tabs)]  # fmt: skip
    web = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return web, port


async def _serving(port: int) -> bool:
    for _ in range(300):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        await asyncio.sleep(0.05)
    return False


def _dashboards(group: int) -> list[int]:
    """The dashboards of `tally web`'s process group (not the shells that start them)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit():
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if int(fields[2]) == group and fields[0] != "Z" and b"tally.tui" in argv and b"web" not in argv:
                    found.append(int(entry.name))
    return found
