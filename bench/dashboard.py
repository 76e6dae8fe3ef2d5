"""The dashboard scenario: how many updates a second the dashboard absorbs while its input stays responsive.

The real TallyApp runs headless (Textual's run_test) against a real Tally
server; one client of the swarm (so the swarm speaks Tally) floods adds at
``rate`` a second, and a key is pressed every 100 ms. Reported: updates a
second the app caught up with (it must show the final seq), and how long each
key press took to be handled.

The dashboard cost scenario runs the real ``tally`` command in a terminal and
reads its CPU, idle and at a steady rate of updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from typing import Any

from textual import events

from bench.swarm import Options, Swarm, cpu_seconds, percentile


async def absorb(swarm: Swarm, options: Options) -> dict[str, Any]:
    # Here: the cost scenario runs the dashboard in a process of its own.
    from tally.tui.app import make_app
    from tally.tui.link import LinkOptions

    rate, seconds = options.rate, options.seconds
    app = make_app(LinkOptions(f"ws://127.0.0.1:{swarm.port}", "bench-dashboard", stall_timeout=60))
    async with app.run_test(size=(100, 30)) as pilot:
        while app.dashboard.status.state != "connected":
            await pilot.pause(0.01)
        await swarm.connect(1)
        if not await swarm.wait(swarm.synced, 10):
            return {"valid": False, "why": "flooder did not sync"}
        flooder = swarm.clients[0]
        start_seq, start = app.dashboard.total.seq, time.monotonic()

        async def flood() -> int:
            sent = 0
            while (elapsed := time.monotonic() - start) < seconds:
                while sent < elapsed * rate:
                    sent += 1
                    flooder.send_text(swarm.dialect.add(sent))
                await asyncio.sleep(0.002)
            return sent

        flooding = asyncio.create_task(flood())
        keys = []
        field = app.dashboard.entry.input
        while not flooding.done():
            # Not pilot.press: it waits for the app to be idle, which a flood never lets it be.
            # A key event straight to the input, and the time until the input shows it.
            before, pressed = field.value, time.monotonic()
            field.post_message(events.Key("1", "1"))
            while field.value == before:  # noqa: ASYNC110 - polling is the measurement
                await asyncio.sleep(0.0005)
            keys.append((time.monotonic() - pressed) * 1000)
            await asyncio.sleep(0.1)
        sent = await flooding
        caught_up = await swarm.wait(lambda: app.dashboard.total.seq >= start_seq + sent, 30)
        elapsed = time.monotonic() - start
        typed_ok = app.dashboard.entry.input.value == "1" * len(keys)
    if not caught_up or not typed_ok:
        return {"valid": False, "why": "the dashboard fell behind or lost keys"}
    return {"valid": True, "updates_per_s": sent / elapsed, "key_p50_ms": statistics.median(keys),
            "key_p99_ms": percentile(keys, 0.99)}  # fmt: skip


async def cost(swarm: Swarm, options: Options) -> dict[str, Any]:
    """What a real dashboard process costs, in % of one core: idle, then while others add ``rate`` a second.

    ``tally`` runs as a person runs it, in a terminal (a pseudo-terminal of 100x30 whose screen is read and
    dropped), with a home of its own; each stretch lasts ``seconds``.
    """
    rate, seconds = options.rate, options.seconds
    await swarm.connect(1)
    if not await swarm.wait(swarm.synced, 10):
        return {"valid": False, "why": "the adder did not sync"}
    adder = swarm.clients[0]
    watching = swarm.trackers[adder]
    with tempfile.TemporaryDirectory() as home:
        dashboard, screen = _open_dashboard(swarm.port, home)
        loop = asyncio.get_running_loop()
        loop.add_reader(screen, _drain, screen)
        try:
            # In: the adder has seen it join (a live room lists everyone); then a moment to draw its first screens.
            if not await swarm.wait(lambda: watching.listed >= 2, 60, interval=0.05):
                return {"valid": False, "why": "the dashboard did not join"}
            await asyncio.sleep(2.0)
            before, start = cpu_seconds(dashboard.pid), time.monotonic()
            await asyncio.sleep(seconds)
            idle = (cpu_seconds(dashboard.pid) - before) / (time.monotonic() - start)
            before, start = cpu_seconds(dashboard.pid), time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - start) < seconds:
                while sent < elapsed * rate:
                    sent += 1
                    adder.send_text(swarm.dialect.add(sent))
                await asyncio.sleep(0.005)
            busy = (cpu_seconds(dashboard.pid) - before) / (time.monotonic() - start)
            alive = dashboard.poll() is None
        finally:
            loop.remove_reader(screen)
            dashboard.terminate()
            try:
                dashboard.wait(10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
                dashboard.wait()
            os.close(screen)
    if not alive:
        return {"valid": False, "why": "the dashboard exited"}
    return {"valid": True, "idle_cpu_pct": idle * 100, "busy_cpu_pct": busy * 100}


def _open_dashboard(port: int, home: str) -> tuple[subprocess.Popen[bytes], int]:
    """``tally`` in a 100x30 pseudo-terminal; the process and the terminal's end that reads its screen."""
    screen, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/config", "XDG_STATE_HOME": f"{home}/state",
           "XDG_DATA_HOME": f"{home}/data", "XDG_RUNTIME_DIR": home, "TERM": "xterm-256color"}  # fmt: skip
    argv = [sys.executable, "-m", "tally.tui", "--url", f"ws://127.0.0.1:{port}", "--no-spawn", "--name", "bench"]
    process = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True)
    os.close(terminal)
    return process, screen


def _drain(screen: int) -> None:
    with contextlib.suppress(OSError):
        os.read(screen, 1 << 16)
